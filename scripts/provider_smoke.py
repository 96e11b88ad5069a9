"""One real generation with the configured provider: a deployment checked in a minute.

    python -m scripts.provider_smoke leonardo --image render.jpg
    python -m scripts.provider_smoke replicate --image render.jpg --out result.png

It reads the same environment as the gateway (``LEONARDO_API_KEY``,
``REPLICATE_API_TOKEN``, ``GATEWAY_LEONARDO_MODEL_ID``, ``GATEWAY_REPLICATE_VERSION``…,
see docs/DEPLOYMENT.md), then:

1. checks the configured model with a read-only call (Leonardo: the model id is among
   ``GET /platformModels``; Replicate: ``GET /models/{owner}/{name}/versions/{id}``
   exists and its input schema has every input the client sends);
2. makes **one** generation (this costs one image) with the parameters of the middle
   of the optimizer's space, or those given with ``--strength/--guidance/--structure``;
3. prints the request that was sent (never the key), the cost the provider reported
   (Leonardo's ``apiCreditCost``; Replicate reports ``predict_time`` only) next to the
   configured estimate, and saves the image.

Exit status: 0 on success, 1 if the provider refused or failed, 2 if the provider is
not configured (no key) or the model check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import httpx
from PIL import Image, ImageOps

from services.common.parameter_space import DIMENSIONS, to_native
from services.gateway.errors import ProviderError
from services.gateway.providers import (
    GenerationRequest,
    LeonardoProvider,
    ReplicateProvider,
    build_providers,
)
from services.gateway.settings import GatewaySettings

PROVIDERS = {"leonardo": "leonardo", "replicate": "stablediffusion"}
KEY_ENV = {"leonardo": "LEONARDO_API_KEY", "replicate": "REPLICATE_API_TOKEN"}
PROMPT = ("photorealistic interior photograph, natural daylight, realistic materials, "
          "35mm, high detail")
NEGATIVE = "cartoon, illustration, 3d render, cgi, blurry, distorted walls"


def _middle(name: str) -> float:
    dim = next(d for d in DIMENSIONS if d.name == name)
    return round((dim.low + dim.high) / 2, 3)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.provider_smoke",
        description="One real generation with the configured provider (costs one image).")
    parser.add_argument("provider", choices=sorted(PROVIDERS))
    parser.add_argument("--image", type=Path, required=True, help="a render (JPEG/PNG/WebP)")
    parser.add_argument("--out", type=Path, help="where to save the result "
                        "(default: smoke-<provider>.<ext> next to the render)")
    parser.add_argument("--prompt", default=PROMPT)
    parser.add_argument("--negative-prompt", default=NEGATIVE)
    parser.add_argument("--strength", type=float, default=_middle("strength"))
    parser.add_argument("--guidance", type=float, default=_middle("guidance"))
    parser.add_argument("--structure", type=float, default=_middle("structure"))
    parser.add_argument("--seed", type=int, default=0, help="0: a random seed")
    return parser.parse_args(argv)


def render_jpeg(path: Path) -> bytes:
    """The render as the gateway stores it: EXIF-oriented RGB JPEG."""
    with Image.open(path) as source:
        rgb = ImageOps.exif_transpose(source).convert("RGB")
    out = io.BytesIO()
    rgb.save(out, format="JPEG", quality=92)
    return out.getvalue()


def check_model(provider: Any, key: str) -> tuple[bool, str]:
    """A read-only look at the configured model: ``(ok, what was found)``."""
    headers = {"Authorization": f"Bearer {key}", "Accept": "application/json"}
    with httpx.Client(timeout=30, headers=headers) as http:
        if isinstance(provider, LeonardoProvider):
            answer = http.get(f"{provider.base_url}/platformModels")
            if answer.status_code != 200:
                return False, f"GET /platformModels → HTTP {answer.status_code}"
            models = {m.get("id"): m.get("name") for m in answer.json().get("custom_models", [])}
            name = models.get(provider.model_id)
            if name is None:
                return True, (f"model {provider.model_id} is not a platform model (a custom "
                              "model of the account?): check it in the Leonardo app")
            return True, f"model {provider.model_id} = {name}"
        assert isinstance(provider, ReplicateProvider)
        if not provider.version:
            return True, f"no version pinned: {provider.model} must be an official model"
        answer = http.get(f"{provider.base_url}/models/{provider.model}/versions/"
                          f"{provider.version}")
        if answer.status_code != 200:
            return False, (f"version {provider.version[:12]} of {provider.model}: HTTP "
                           f"{answer.status_code}")
        schema = answer.json().get("openapi_schema", {}).get("components", {}).get(
            "schemas", {}).get("Input", {}).get("properties", {})
        sample = GenerationRequest(b"", "structure", to_native("stablediffusion", {
            "strength": 0.3, "guidance": 8, "structure": 0.85}), "p", "n")
        missing = sorted(set(provider.build_input(sample, "x", 1)) - set(schema))
        if missing:
            return False, (f"version {provider.version[:12]} has no input "
                           f"{', '.join(missing)}: the model would ignore it")
        return True, f"version {provider.version[:12]} of {provider.model} takes every input"


def main(argv: list[str] | None = None, settings: GatewaySettings | None = None,
         out: TextIO = sys.stdout) -> int:
    args = parse_args(argv)
    settings = settings or GatewaySettings()
    provider = build_providers(settings).get(PROVIDERS[args.provider])
    key = (settings.leonardo_api_key if args.provider == "leonardo"
           else settings.replicate_api_token)

    def say(text: str) -> None:
        print(text.replace(key, "***") if key else text, file=out, flush=True)

    if provider is None:
        say(f"{args.provider}: no configurado; define {KEY_ENV[args.provider]}. / "
            f"not configured; set {KEY_ENV[args.provider]}.")
        return 2
    ok, found = check_model(provider, key)
    say(f"model check: {found}")
    if not ok:
        return 2
    image = render_jpeg(args.image)
    values = {"strength": args.strength, "guidance": args.guidance,
              "structure": args.structure}
    parameters = to_native(PROVIDERS[args.provider], values)
    request = GenerationRequest(image=image, mode="structure", parameters=parameters,
                                prompt=args.prompt, negative_prompt=args.negative_prompt,
                                seed=args.seed)

    async def progress(stage: str, fraction: float) -> None:
        say(f"  {stage:<11} {fraction:4.0%}")

    started = time.monotonic()
    try:
        result = asyncio.run(provider.generate(request, progress))
    except ProviderError as exc:
        say(f"FAILED: {exc.message_es}\n        {exc.message_en}")
        return 1
    details = result.details
    target = args.out or args.image.with_name(
        f"smoke-{args.provider}.{'png' if result.content_type == 'image/png' else 'jpg'}")
    target.write_bytes(result.image)
    summary = {
        "provider": args.provider, "model": result.model,
        "parameters": parameters, "request": details.get("request"),
        "cost": {"estimated_usd": result.estimated_cost_usd,
                 "reported_api_credits": details.get("api_credit_cost"),
                 "reported_predict_time_s": details.get("predict_time")},
        "generation_id": details.get("generation_id") or details.get("prediction_id"),
        "http_requests": details.get("http_requests"), "retries": details.get("retries"),
        "seconds": round(time.monotonic() - started, 1), "saved": str(target)}
    say(json.dumps(summary, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
