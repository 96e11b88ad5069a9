"""Every sentence a provider failure can show, keyed by a code, in Spanish and English.

A provider error is built from a *code* and its *parameters* (``provider_error("refused",
provider="Replicate", status=422, step="create_prediction", detail="...")``); the error
carries both sentences and, in ``details``, the code and the parameters, so a page can
render it again in either language (:func:`render`) without parsing a sentence.

Parameters named ``step`` and ``reason`` are themselves codes (of :data:`STEPS` and of
:data:`MESSAGES`) and are rendered in the same language as the sentence around them.
"""

from __future__ import annotations

from typing import Any, Literal

from services.gateway.errors import ProviderError

Lang = Literal["es", "en"]

STEPS: dict[str, tuple[str, str]] = {
    "request_upload": ("pedir la subida del render", "request the render upload"),
    "upload_render": ("subir el render", "upload the render"),
    "create_generation": ("crear la generación", "create the generation"),
    "check_generation": ("consultar la generación", "check the generation"),
    "find_generation": ("buscar la generación ya creada", "look up the generation already created"),
    "create_prediction": ("crear la predicción", "create the prediction"),
    "check_prediction": ("consultar la predicción", "check the prediction"),
    "find_prediction": ("buscar la predicción ya creada", "look up the prediction already created"),
    "download_result": ("descargar la imagen generada", "download the generated image"),
    "read_account": ("leer la cuenta", "read the account"),
}

MESSAGES: dict[str, tuple[str, str]] = {
    # reasons (used inside other sentences)
    "reason_timeout": ("tiempo de espera agotado", "timed out"),
    "reason_network": ("error de red ({name})", "network error ({name})"),
    "reason_malformed_json": ("respuesta JSON mal formada", "malformed JSON in the answer"),
    "reason_rate_limited": ("límite de peticiones (HTTP 429)", "rate limited (HTTP 429)"),
    "reason_server_error": ("error del servidor (HTTP {status})", "server error (HTTP {status})"),
    "reason_result_missing": ("el resultado no está disponible (HTTP {status})",
                              "the result is not available (HTTP {status})"),
    # request parameters
    "param_missing": (
        "{provider}: falta el parámetro numérico {name!r}; no se llamó al proveedor.",
        "{provider}: numeric parameter {name!r} is missing; the provider was not called."),
    "param_out_of_range": (
        "{provider}: {name}={value} está fuera de lo que acepta la API ({low}–{high}); "
        "no se llamó al proveedor.",
        "{provider}: {name}={value} is outside what the API accepts ({low}–{high}); "
        "the provider was not called."),
    "param_not_integer": (
        "{provider}: {name}={value} debe ser un número entero para esta API; no se llamó "
        "al proveedor.",
        "{provider}: {name}={value} must be a whole number for this API; the provider was "
        "not called."),
    "render_unreadable": ("{provider}: el render no se pudo leer como imagen.",
                          "{provider}: the render could not be read as an image."),
    # HTTP outcomes
    "rate_limited_long": (
        "{provider} limita las peticiones y pide esperar {seconds} s al {step}; se "
        "reintentará más tarde.",
        "{provider} is rate limiting and asks to wait {seconds} s to {step}; it will be "
        "retried later."),
    "retries_exhausted": (
        "{provider} no respondió bien al {step} tras {attempts} intentos: {reason}. Se "
        "reintentará más tarde.",
        "{provider} kept failing to {step} after {attempts} attempts: {reason}. It will be "
        "retried later."),
    "answer_too_large": ("{provider}: la respuesta al {step} supera {megabytes} MB.",
                         "{provider}: the answer to {step} exceeds {megabytes} MB."),
    "key_refused": (
        "{provider} rechazó la clave de API (HTTP {status}) al {step}. Revisa {key_env}.",
        "{provider} refused the API key (HTTP {status}) to {step}. Check {key_env}."),
    "no_credit": ("{provider} no tiene crédito para generar (HTTP 402). Recarga la cuenta.",
                  "{provider} has no credit left (HTTP 402). Top the account up."),
    "refused": ("{provider} rechazó la petición al {step} (HTTP {status}){detail}",
                "{provider} refused the request to {step} (HTTP {status}){detail}"),
    "not_an_image": ("{provider} devolvió un resultado que no es una imagen.",
                     "{provider} returned a result that is not an image."),
    "inline_image_unreadable": ("{provider} devolvió una imagen en línea ilegible.",
                                "{provider} returned an unreadable inline image."),
    # the create call: never paid twice
    "create_outcome_unknown": (
        "{provider} no contestó a tiempo al {step} ({reason}) y no se encontró la "
        "generación en la cuenta; puede que se haya creado. No se repite sola para no "
        "pagarla dos veces: revisa la cuenta del proveedor y pulsa Reintentar.",
        "{provider} did not answer the request to {step} in time ({reason}) and the "
        "generation was not found in the account; it may have been created. It is not "
        "repeated automatically so as not to pay twice: check the provider account and "
        "press Retry."),
    "lookup_failed": (
        "{provider} falló al {step} ({reason}) y tampoco se pudo comprobar si la creó: "
        "no se repite sola para no pagarla dos veces. Revisa la cuenta del proveedor y "
        "pulsa Reintentar.",
        "{provider} failed to {step} ({reason}) and it could not be checked whether it "
        "was created: it is not repeated automatically so as not to pay twice. Check the "
        "provider account and press Retry."),
    # Leonardo
    "leonardo_error_200": ("Leonardo AI rechazó la petición: {detail}.",
                           "Leonardo AI refused the request: {detail}."),
    "leonardo_key_error_200": (
        "Leonardo AI rechazó la clave de API: {detail}. Revisa LEONARDO_API_KEY.",
        "Leonardo AI refused the API key: {detail}. Check LEONARDO_API_KEY."),
    "leonardo_upload_incomplete": ("Leonardo AI devolvió una subida de imagen incompleta.",
                                   "Leonardo AI returned an incomplete image upload."),
    "leonardo_upload_refused": (
        "El almacenamiento de Leonardo AI rechazó la subida del render (HTTP {status}: "
        "{detail}) dos veces, también con un enlace de subida nuevo; la clave de API no "
        "interviene en esa subida. Se reintentará más tarde.",
        "Leonardo AI's storage refused the render upload (HTTP {status}: {detail}) twice, "
        "also with a fresh upload link; the API key plays no part in that upload. It will "
        "be retried later."),
    "leonardo_no_generation_id": ("Leonardo AI no devolvió el id de la generación.",
                                  "Leonardo AI returned no generation id."),
    "leonardo_no_user": ("Leonardo AI no devolvió el usuario de la clave.",
                         "Leonardo AI returned no user for the key."),
    "leonardo_deadline": (
        "Leonardo AI no terminó la generación {generation_id} en {seconds} s. Leonardo no "
        "permite cancelarla y puede que aún se cobre, así que no se repite sola: revisa la "
        "cuenta y pulsa Reintentar.",
        "Leonardo AI did not finish generation {generation_id} within {seconds} s. Leonardo "
        "cannot cancel it and may still charge it, so it is not repeated automatically: "
        "check the account and press Retry."),
    "leonardo_no_image": ("Leonardo AI terminó sin devolver ninguna imagen.",
                          "Leonardo AI finished without an image."),
    "leonardo_failed": (
        "Leonardo AI no pudo generar la imagen (estado FAILED, sin motivo); se reintentará.",
        "Leonardo AI could not generate the image (status FAILED, no reason given); it will "
        "be retried."),
    "unknown_status": ("{provider} devolvió un estado desconocido: {status!r}.",
                       "{provider} returned an unknown status: {status!r}."),
    # Replicate
    "replicate_no_file_url": ("Replicate no devolvió la URL del render subido.",
                              "Replicate returned no URL for the uploaded render."),
    "replicate_no_image": ("Replicate terminó sin devolver ninguna imagen.",
                           "Replicate finished without an image."),
    "replicate_failed": ("Replicate no pudo generar la imagen: {detail}.",
                         "Replicate could not generate the image: {detail}."),
    "replicate_failed_retry": (
        "Replicate no pudo generar la imagen: {detail}. Se reintentará.",
        "Replicate could not generate the image: {detail}. It will be retried."),
    "replicate_canceled": (
        "La predicción se canceló en Replicate; pulsa Reintentar para repetirla.",
        "The prediction was cancelled on Replicate; press Retry to run it again."),
    "replicate_aborted": (
        "Replicate abandonó la predicción antes de empezarla (plazo Cancel-After de "
        "{seconds} s); no se cobra. Se reintentará más tarde.",
        "Replicate dropped the prediction before it started (Cancel-After deadline of "
        "{seconds} s); it is not charged. It will be retried later."),
    "replicate_deadline": (
        "Replicate no terminó en {seconds} s; se canceló la predicción y se reintentará "
        "más tarde.",
        "Replicate did not finish within {seconds} s; the prediction was cancelled and will "
        "be retried later."),
    "replicate_bad_prediction": ("Replicate devolvió una predicción sin id ni estado.",
                                 "Replicate returned a prediction without id or status."),
}

_LANG_INDEX = {"es": 0, "en": 1}


def render(code: str, lang: Lang, params: dict[str, Any]) -> str:
    """The sentence for ``code`` in ``lang`` (``step``/``reason`` rendered as codes too)."""
    index = _LANG_INDEX[lang]
    values = dict(params)
    if isinstance(values.get("step"), str) and values["step"] in STEPS:
        values["step"] = STEPS[values["step"]][index]
    if isinstance(values.get("reason"), str) and values["reason"] in MESSAGES:
        inner = {k: v for k, v in values.items() if k != "reason"}
        values["reason"] = render(values["reason"], lang, inner)
    return MESSAGES[code][index].format(**values)


def provider_error(code: str, *, retryable: bool, cls: type[ProviderError] = ProviderError,
                   extra: dict[str, Any] | None = None, **params: Any) -> ProviderError:
    """A :class:`ProviderError` (or subclass ``cls``) for ``code``, both sentences built,
    with ``details = {"message_code": code, "message_params": params}``."""
    kwargs = dict(extra or {})
    error = cls(render(code, "es", params), render(code, "en", params), retryable=retryable,
                **kwargs)
    error.details = {"message_code": code, "message_params": params}
    return error
