"""What Leonardo AI's ``POST /generations`` accepts, for the fields our client sends.

Hand-written from public sources (read, not copied); every line names its source:

[OAS]   Leonardo's OpenAPI bundle in its official SDK repository,
        https://github.com/Leonardo-Interactive/leonardo-python-sdk/blob/4b641e3b5278ce43e6df13cfc3ec0a6638b7b5e6/.speakeasy/temp/03f5b6/openapi/bundle/openapi.json
        (``#/paths/~1generations/post/requestBody``; ``#/components/schemas/controlnet_input``).
[SDK]   the generated model of the same repository,
        https://github.com/Leonardo-Interactive/leonardo-python-sdk/blob/main/src/leonardo_ai_sdk/models/operations/creategeneration.py
[GUIDE] "Generate Images Using Image Guidance",
        https://docs.leonardo.ai/docs/generate-images-using-image-to-image-guidance
        (the preprocessor table per base model, and the note "Image to Image with
        multiple ControlNets is incompatible with most SDXL models, except for Style
        Reference (67) and Character Reference (133)").
[ERR]   the error shape ``{"error", "path", "code": "validation-failed"}`` with HTTP 400,
        and the message for a float sent as ``Int``: "expected a 32-bit integer for
        type 'Int'" (reported in n8n-io/n8n#14918, cited by issue 15).

Deliberately stricter than the real API: a field that is not in this table is refused
("unexpected field"), so a client change that sends something new must add its line
here, with its source.
"""

from __future__ import annotations

from typing import Any

from services.gateway.providers.fakes._contract import Field, first_problem

OAS = "OpenAPI bundle #/paths/~1generations/post"
CN = "OpenAPI bundle #/components/schemas/controlnet_input"

PRESET_STYLES = (  # [OAS] #/components/schemas/sd_generation_style
    "ANIME", "BOKEH", "CINEMATIC", "CINEMATIC_CLOSEUP", "CREATIVE", "DYNAMIC", "ENVIRONMENT",
    "FASHION", "FILM", "FOOD", "GENERAL", "HDR", "ILLUSTRATION", "LEONARDO", "LONG_EXPOSURE",
    "MACRO", "MINIMALISTIC", "MONOCHROME", "MOODY", "NONE", "NEUTRAL", "PHOTOGRAPHY",
    "PORTRAIT", "RAYTRACED", "RENDER_3D", "RETRO", "SKETCH_BW", "SKETCH_COLOR",
    "STOCK_PHOTO", "VIBRANT", "UNPROCESSED")

GENERATION: dict[str, Field] = {
    "prompt": Field("string", f"{OAS} required: [prompt]", required=True),
    "negative_prompt": Field("string", f"{OAS} negative_prompt: String"),
    "modelId": Field("string", f"{OAS} modelId: String"),
    "width": Field("integer", f"{OAS} width: Int; [SDK] 'between 32 and 1536, multiple of 8'",
                   low=32, high=1536, multiple_of=8),
    "height": Field("integer", f"{OAS} height: Int; [SDK] 'between 32 and 1536, multiple of 8'",
                    low=32, high=1536, multiple_of=8),
    "num_images": Field("integer", f"{OAS} num_images: Int, 'between 1 and 8'", low=1, high=8),
    "init_image_id": Field("string", f"{OAS} init_image_id: String"),
    "init_strength": Field("number", f"{OAS} init_strength: Float, 'between 0.1 and 0.9'",
                           low=0.1, high=0.9),
    "guidance_scale": Field("integer", f"{OAS} guidance_scale: Int, 'between 1 and 20'",
                            low=1, high=20),
    "alchemy": Field("boolean", f"{OAS} alchemy: Boolean, default true"),
    "presetStyle": Field("string", f"{OAS} presetStyle: sd_generation_style",
                         choices=PRESET_STYLES),
    "seed": Field("integer", f"{OAS} seed: bigint; [SDK] 'maximum 9999999998 (non-Flux)'",
                  low=0, high=9_999_999_998),
    "controlnets": Field("array", f"{OAS} controlnets: [controlnet_input]"),
}

CONTROLNET: dict[str, Field] = {
    "initImageId": Field("string", f"{CN} initImageId: String (nullable: false)",
                         required=True),
    "initImageType": Field("string", f"{CN} initImageType enum", required=True,
                           choices=("GENERATED", "UPLOADED")),
    "preprocessorId": Field("number", f"{CN} preprocessorId: numeric (nullable: false)",
                            required=True),
    "weight": Field("number", f"{CN} weight: Float; [GUIDE] 'a numeric value between 0-2'",
                    low=0, high=2),
    "strengthType": Field("string", f"{CN} strengthType enum", choices=(
        "Low", "Mid", "High", "Ultra", "Max")),
}

# [GUIDE] "Other ControlNets": preprocessor ids per base model.
PREPROCESSORS: dict[str, dict[int, str]] = {
    "SD1_5": {1: "Edge to Image", 3: "Depth to Image", 5: "Line Art", 6: "Normal Map",
              7: "Pose to Image", 8: "Pattern to Image", 9: "QR Code to Image",
              10: "Sketch to Image", 11: "Text Image Input"},
    "SD2_1": {12: "Edge to Image", 13: "Depth to Image", 15: "Normal Map", 16: "Pose to Image",
              17: "Sketch to Image", 18: "Text Image Input"},
    "SDXL": {19: "Edge to Image", 20: "Depth to Image", 21: "Pose to Image",
             22: "Text Image Input", 67: "Style Reference", 100: "Content Reference",
             133: "Character Reference"},
}
SDXL_IMG2IMG_COMPATIBLE = frozenset({67, 133})  # [GUIDE] the note quoted above
REFERENCE_PREPROCESSORS = frozenset({67, 100, 133})  # [SDK] strengthType: "only for Style,
# Character and Content Reference controlnets"

# Platform models and their base, from the model names in [GUIDE]'s sample requests
# (Kino XL, Lightning XL, Diffusion XL) and from public client code for the SD1.5 ones;
# the smoke command (scripts/provider_smoke.py) checks the configured one for real.
PLATFORM_MODELS: dict[str, tuple[str, str]] = {
    "aa77f04e-3eec-4034-9c07-d0f619684628": ("Leonardo Kino XL", "SDXL"),
    "b24e16ff-06e3-43eb-8d33-4416c2d75876": ("Leonardo Lightning XL", "SDXL"),
    "1e60896f-3c26-4296-8ecc-53e2afecc132": ("Leonardo Diffusion XL", "SDXL"),
    "e316348f-7773-490e-adcd-46757c738eb7": ("Absolute Reality v1.6", "SD1_5"),
    "ac614f96-1082-45bf-be9d-757f2d31c174": ("DreamShaper v7", "SD1_5"),
}


def generation_problem(body: dict[str, Any], known_init_images: set[str]) -> tuple[str, str] | None:
    """``(path, message)`` of the first reason the real API would refuse ``body``."""
    if (found := first_problem(body, GENERATION)) is not None:
        return f"$.{found[0]}", found[1]
    width, height = body.get("width", 1024), body.get("height", 768)  # [OAS] defaults
    if body.get("num_images", 4) > 4 and max(width, height) > 768:  # [OAS] num_images text
        return "$.num_images", "num_images must be between 1 and 4 when width or height > 768"
    if body.get("alchemy", True) is False and body.get("presetStyle") not in (
            None, "LEONARDO", "NONE"):  # [SDK] presetStyle: "When alchemy is disabled, use
        return "$.presetStyle", "presetStyle must be LEONARDO or NONE when alchemy is off"
    model = body.get("modelId")
    if model is not None and model not in PLATFORM_MODELS:
        return "$.modelId", f"model {model} not found"
    base = PLATFORM_MODELS[model][1] if model else "SDXL"  # [OAS] default Lightning XL
    init_image = body.get("init_image_id")
    if init_image is not None and init_image not in known_init_images:
        return "$.init_image_id", "init_image_id does not refer to an uploaded init image"
    for index, controlnet in enumerate(body.get("controlnets") or []):
        where = f"$.controlnets[{index}]"
        if not isinstance(controlnet, dict):
            return where, "expected an object"
        if (found := first_problem(controlnet, CONTROLNET)) is not None:
            return f"{where}.{found[0]}", found[1]
        preprocessor = controlnet["preprocessorId"]
        if preprocessor not in PREPROCESSORS[base]:
            return (f"{where}.preprocessorId",
                    f"preprocessorId {preprocessor} is not available for {base} models")
        if init_image is not None and base == "SDXL" and (
                preprocessor not in SDXL_IMG2IMG_COMPATIBLE):
            return (f"{where}.preprocessorId",
                    f"Image to Image is incompatible with ControlNet {preprocessor} on SDXL "
                    "models (only Style Reference 67 and Character Reference 133)")
        if "strengthType" in controlnet and preprocessor not in REFERENCE_PREPROCESSORS:
            return f"{where}.strengthType", "strengthType is only for reference controlnets"
        if controlnet.get("strengthType") is not None and controlnet.get("weight") is not None:
            return where, "use weight or strengthType, not both"  # [GUIDE] "not both"
        if controlnet["initImageType"] == "UPLOADED" and (
                controlnet["initImageId"] not in known_init_images):
            return f"{where}.initImageId", "controlnet initImageId is unknown"
    return None
