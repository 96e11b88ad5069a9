"""Provider failures as sentences: a code and its parameters, said in either language.

A provider error is built from a *code* and its *parameters* (``provider_error("refused",
provider="Replicate", status=422, step="create_prediction", detail="...")``). The
sentences live in the gateway's catalogue (``web/locales/errors.<lang>.json``) under
``provider_error.<code>``; the error carries both sentences, its ``key`` and its
``params``, which the job runner stores on the variant, so a page can say it again in
its own language (:func:`say`) without parsing a sentence.

Parameters named ``step`` and ``reason`` are themselves codes (``provider_step.<step>``
and ``provider_error.<reason>``) and are said in the same language as the sentence
around them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.common.catalogue import Sentence
from services.gateway.errors import GATEWAY, ProviderError

PREFIX = "provider_error."
"""Catalogue keys of provider failures (and of the reasons said inside them)."""
STEP_PREFIX = "provider_step."
"""Catalogue keys of what the client was doing (``step``)."""


def render(code: str, lang: str, params: Mapping[str, Any]) -> str:
    """The sentence for ``code`` in ``lang`` (``step``/``reason`` said as codes too)."""
    values = dict(params)
    step = values.get("step")
    if isinstance(step, str) and STEP_PREFIX + step in GATEWAY:
        values["step"] = GATEWAY.say(STEP_PREFIX + step, lang)
    reason = values.get("reason")
    if isinstance(reason, str) and PREFIX + reason in GATEWAY:
        inner = {k: v for k, v in values.items() if k != "reason"}
        values["reason"] = render(reason, lang, inner)
    return GATEWAY.say(PREFIX + code, lang, **values)


def say(key: str, lang: str, params: Mapping[str, Any]) -> str:
    """A stored error (catalogue ``key`` and ``params``) said in ``lang``.

    Raises:
        KeyError, IndexError, ValueError: the key or its parameters no longer fit the
            catalogue (a row written by an older release); callers fall back to the text
            stored with it.
    """
    if key.startswith(PREFIX):
        return render(key.removeprefix(PREFIX), lang, params)
    return GATEWAY.say(key, lang, **params)


def provider_error(
    code: str,
    *,
    retryable: bool,
    cls: type[ProviderError] = ProviderError,
    extra: dict[str, Any] | None = None,
    **params: Any,
) -> ProviderError:
    """A :class:`ProviderError` (or subclass ``cls``) for ``code``, both sentences built,
    with ``key = "provider_error.<code>"`` and ``params``."""
    sentence = Sentence(
        PREFIX + code, render(code, "es", params), render(code, "en", params), params
    )
    return cls(sentence, retryable=retryable, **(extra or {}))


# What a failure means to a trainer, for the card's one-line summary (train.error.<kind>).
_KIND_OF_CODE = {
    "rate_limited_long": "rate_limited",
    "leonardo_deadline": "timeout",
    "replicate_deadline": "timeout",
    "replicate_aborted": "timeout",
    "key_refused": "rejected",
    "no_credit": "rejected",
    "refused": "rejected",
    "leonardo_error_200": "rejected",
    "leonardo_key_error_200": "rejected",
    "leonardo_upload_refused": "rejected",
    "param_missing": "rejected",
    "param_out_of_range": "rejected",
    "param_not_integer": "rejected",
}
_KIND_OF_REASON = {
    "reason_timeout": "timeout",
    "reason_network": "connect",
    "reason_rate_limited": "rate_limited",
}


def failure_kind(key: str, params: Mapping[str, Any]) -> str:
    """``timeout``, ``connect``, ``rate_limited``, ``rejected`` or ``unknown``."""
    code = key.removeprefix(PREFIX)
    if code in _KIND_OF_CODE:
        return _KIND_OF_CODE[code]
    return _KIND_OF_REASON.get(str(params.get("reason")), "unknown")
