"""What Replicate accepts for the model our client runs, and how it refuses the rest.

Hand-written from public sources (read, not copied); every line names its source:

[COG]   the model's source, ``predict.py`` of
        https://github.com/fofr/cog-sdxl-multi-controlnet-lora (commit d74a222,
        "Lazy loading of controlnets for faster starts"), the code behind
        https://replicate.com/fofr/sdxl-multi-controlnet-lora: the ``Input(...)``
        declarations (type, ``ge``/``le``, ``choices``) of ``Predictor.predict``; with
        ``image`` and no ``mask`` and a ControlNet set it runs
        ``StableDiffusionXLControlNetImg2ImgPipeline`` with
        ``strength=prompt_strength``.
[CN]    the same repository's ``controlnet.py`` (``ControlNet.CONTROLNET_MODELS``).
[VER]   version ``89eb212b3d1366a83e949c12a4b45dfe6b6b313b594cb8268e864931ac9ffb16``,
        the id public client code pins for that model (e.g. with inputs ``image``,
        ``controlnet_1``, ``controlnet_1_image``, ``controlnet_1_conditioning_scale``).
[API]   replicate-python ``prediction.py`` (``POST /v1/predictions`` with ``version``,
        ``GET /v1/predictions`` for the list, ``input`` optional on a listed
        prediction) and the Replicate changelog "Set deadlines for predictions"
        (2025-10-16: ``Cancel-After`` header; ``aborted`` if not started by then).
[404]   replicate/replicate-javascript#347 and replicate/replicate-python#320: a
        community model called by name answers 404 ``{"detail": "The requested
        resource could not be found.", "status": 404}``; an unknown version answers
        "The specified version does not exist (or perhaps you don't have permission
        to use it?)".

Deliberately stricter than the real service: Replicate *ignores* an input the model
does not declare (issue 15 cites replicate/cog#2943), so the optimizer would believe it
tuned something that was dropped; this fake refuses it with a 422 instead, so a test
notices.
"""

from __future__ import annotations

import re
from typing import Any

from services.gateway.providers.fakes._contract import Field, first_problem

MODEL = "fofr/sdxl-multi-controlnet-lora"
VERSION = "89eb212b3d1366a83e949c12a4b45dfe6b6b313b594cb8268e864931ac9ffb16"

CONTROLNETS = ("none", "edge_canny", "illusion", "depth_leres", "depth_midas",
               "soft_edge_pidi", "soft_edge_hed", "lineart", "lineart_anime",
               "openpose")  # [CN] CONTROLNET_MODELS
SIZING = ("width_height", "input_image", "controlnet_1_image", "controlnet_2_image",
          "controlnet_3_image", "mask_image")  # [COG] sizing_strategy choices

INPUTS: dict[str, Field] = {
    "prompt": Field("string", "[COG] prompt: str"),
    "negative_prompt": Field("string", "[COG] negative_prompt: str"),
    "image": Field("uri", "[COG] image: Path 'Input image for img2img or inpaint mode'"),
    "sizing_strategy": Field("string", "[COG] sizing_strategy choices", choices=SIZING),
    "num_outputs": Field("integer", "[COG] num_outputs: int, ge=1, le=4", low=1, high=4),
    "guidance_scale": Field("number", "[COG] guidance_scale: float, ge=1, le=50",
                            low=1, high=50),
    "prompt_strength": Field("number", "[COG] prompt_strength: float, ge=0.0, le=1.0 "
                             "(img2img strength)", low=0, high=1),
    "seed": Field("integer", "[COG] seed: int"),
    "controlnet_1": Field("string", "[COG] controlnet_1 choices=[CN]", choices=CONTROLNETS),
    "controlnet_1_image": Field("uri", "[COG] controlnet_1_image: Path"),
    "controlnet_1_conditioning_scale": Field(
        "number", "[COG] controlnet_1_conditioning_scale: float, ge=0.0, le=4.0",
        low=0, high=4),
}

SCHEMAS: dict[str, dict[str, Field]] = {VERSION: INPUTS}
"""Input schema per known version id."""

NOT_FOUND = {"detail": "The requested resource could not be found.", "status": 404}  # [404]
UNKNOWN_VERSION = ("The specified version does not exist (or perhaps you don't have "
                   "permission to use it?)")  # [404]

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?$")


def cancel_after_seconds(value: str) -> float | None:
    """Seconds in a ``Cancel-After`` duration (``90s``, ``5m``, ``1h30m``), None if the
    text is not one or is under the 5-second minimum ([API] changelog)."""
    match = _DURATION.match(value.strip())
    if not value.strip() or match is None or not any(match.groups()):
        return None
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    return total if total >= 5 else None


def input_problem(inputs: dict[str, Any], schema: dict[str, Field]) -> tuple[str, str] | None:
    """``(field, message)`` of the first input the model refuses (or would drop)."""
    for name in inputs:
        if name not in schema:
            return name, (f"the model has no input {name!r} (the real service would "
                          "silently ignore it)")
    if (found := first_problem(inputs, schema)) is not None:
        return found
    if inputs.get("controlnet_1", "none") != "none" and not inputs.get("controlnet_1_image"):
        # [COG] the ControlNet preprocesses controlnet_1_image; without it the run fails
        return "controlnet_1_image", "controlnet_1 needs controlnet_1_image"
    return None


def input_schema(fields: dict[str, Field]) -> dict[str, Any]:
    """The fields as the ``Input`` object of a version's ``openapi_schema`` (the shape
    ``GET /v1/models/{owner}/{name}/versions/{id}`` returns)."""
    properties: dict[str, Any] = {}
    for name, field in fields.items():
        spec: dict[str, Any] = {"type": "string" if field.type == "uri" else field.type}
        if field.type == "uri":
            spec["format"] = "uri"
        if field.low is not None:
            spec["minimum"] = field.low
        if field.high is not None:
            spec["maximum"] = field.high
        if field.choices is not None:
            spec["enum"] = list(field.choices)
        properties[name] = spec
    return {"type": "object", "title": "Input", "properties": properties}
