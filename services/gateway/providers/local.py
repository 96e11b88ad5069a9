"""Local procedural enhancer: the default, offline provider (CPU, Pillow/NumPy/SciPy).

It is *not* a diffusion model. It applies a deterministic chain of photographic
adjustments whose strength depends on the three generation parameters and on
terms found in the prompt, so that the whole learning loop runs for real on a
machine without keys or GPU, and trainers' ratings of its output are meaningful
for the optimizer (different parameters give visibly different images).

Parameters (stablediffusion-style names):

- ``strength`` (0.1–0.5): how far the output moves from the original. The
  adjusted image is blended as ``original + (strength / 0.3) · (adjusted − original)``:
  0.1 keeps a third of the change, 0.3 all of it, 0.5 overshoots (over-processed).
- ``guidance_scale`` (5–12): how strongly prompt terms are followed. Every term
  effect is multiplied by ``0.4 + 1.2 · (guidance − 5) / 7`` (0.4 at 5, 1.6 at 12).
- ``controlnet_conditioning_scale`` (0.7–0.99): structure preservation. Lower
  values let geometry drift (a smooth random displacement of up to
  ``0.2 · (1 − w) · strength`` of the long side: 3 % at w = 0.7 and strength 0.5,
  halved in ``structure`` mode) and soften edges, as a diffusion model with a weak
  ControlNet would.

Prompt terms (English or Spanish, case-insensitive; see ``TERM_EFFECTS``): light,
contrast, detail, denoise, warmth, cool, depth/shadows, colour and photographic
tone. A term in the negative prompt counts against its effect (e.g. "noisy" or
"grainy" in the negative prompt asks for denoising; "oversaturated" lowers
saturation). ``surfaces`` mode weights detail and colour 1.5×.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from services.gateway.providers._http import require_number
from services.gateway.providers.base import GenerationRequest, GenerationResult, ProgressCallback

LABEL = "Afinador (local)"

TERM_EFFECTS: dict[str, tuple[str, ...]] = {
    "light": ("natural light", "daylight", "sunlight", "bright", "well-lit", "well lit",
              "luz natural", "luminoso", "iluminación", "lighting", "global illumination"),
    "contrast": ("contrast", "dramatic", "contraste", "dynamic range", "hdr"),
    "detail": ("detail", "sharp", "crisp", "8k", "4k", "high resolution", "texture",
               "detalle", "nitidez", "textura"),
    "denoise": ("clean", "denoise", "noise-free", "noiseless", "smooth", "limpio"),
    "warmth": ("warm", "golden", "cozy", "cálido", "calido", "acogedor"),
    "cool": ("cool tones", "cold", "blue hour", "frío", "frio"),
    "depth": ("depth", "shadow", "ambient occlusion", "volumetric", "profundidad", "sombra"),
    "color": ("vibrant", "rich color", "rich colour", "saturated", "vivid", "realistic color",
              "colores", "color accuracy"),
    "photo": ("photorealistic", "photograph", "photo", "realistic", "fotorrealista", "real"),
}
# Negative-prompt terms that ask for the *opposite* of an effect.
NEGATIVE_EFFECTS: dict[str, tuple[str, ...]] = {
    "denoise": ("noisy", "noise", "grainy", "grain", "ruido", "granulado"),
    "detail": ("blurry", "blur", "soft focus", "borroso"),
    "color": ("desaturated", "dull", "washed out", "apagado"),
    "oversaturation": ("oversaturated", "saturated colors", "sobresaturado"),
    "flat": ("flat", "plano", "cartoon", "illustration", "drawn", "sketch"),
}

STAGES = ("prepare", "light_and_tone", "detail", "structure", "encode")


@dataclass(frozen=True)
class EffectAmounts:
    light: float
    contrast: float
    detail: float
    denoise: float
    warmth: float
    depth: float
    saturation: float
    photo: float


def _count(text: str, phrases: tuple[str, ...]) -> int:
    lowered = text.lower()
    return sum(1 for phrase in phrases if re.search(r"\b" + re.escape(phrase), lowered))


def effect_amounts(prompt: str, negative: str, guidance: float, mode: str) -> EffectAmounts:
    """How strongly each adjustment is applied, from prompt terms and guidance."""
    gain = 0.4 + 1.2 * (guidance - 5.0) / 7.0
    counts = {name: min(_count(prompt, phrases), 3) for name, phrases in TERM_EFFECTS.items()}
    negs = {name: min(_count(negative, phrases), 3) for name, phrases in NEGATIVE_EFFECTS.items()}
    surfaces = 1.5 if mode == "surfaces" else 1.0

    def amount(n: float) -> float:
        return gain * (1.0 - 0.5 ** n)  # 0, .5, .75, .875 × gain: diminishing returns

    return EffectAmounts(
        light=amount(counts["light"]),
        contrast=amount(counts["contrast"]),
        detail=amount(counts["detail"] + negs["detail"]) * surfaces,
        denoise=amount(counts["denoise"] + negs["denoise"]),
        warmth=amount(counts["warmth"]) - amount(counts["cool"]),
        depth=amount(counts["depth"] + negs["flat"]),
        saturation=(amount(counts["color"] + negs["color"]) - amount(negs["oversaturation"]))
        * surfaces,
        photo=amount(counts["photo"]),
    )


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)


def _light_and_tone(rgb: np.ndarray, fx: EffectAmounts) -> np.ndarray:
    out = rgb
    if fx.light:
        # Lift shadows and midtones (gamma < 1), plus a touch of exposure.
        out = np.power(np.clip(out, 0, 1), 1.0 / (1.0 + 0.35 * fx.light)) * (1 + 0.05 * fx.light)
    if fx.contrast:
        s_curve = 0.5 - 0.5 * np.cos(np.pi * np.clip(out, 0, 1))
        out = out + 0.6 * fx.contrast * (s_curve - out)
    if fx.warmth:
        balance = np.array([1 + 0.06 * fx.warmth, 1 + 0.01 * fx.warmth, 1 - 0.07 * fx.warmth],
                           dtype=np.float32)
        out = out * balance
    if fx.saturation:
        lum = _luminance(out)[..., None]
        out = lum + (out - lum) * (1 + 0.45 * fx.saturation)
    if fx.photo:
        # Filmic highlight roll-off: compresses clipped highlights like a camera curve.
        x = np.clip(out, 0, None)
        rolled = x / (1 + 0.35 * x) * 1.35
        out = out + 0.5 * fx.photo * (rolled - out)
    return out


def _detail(rgb: np.ndarray, fx: EffectAmounts) -> np.ndarray:
    out = rgb
    if fx.denoise:
        smooth = ndimage.median_filter(out, size=(3, 3, 1))
        out = out + min(fx.denoise, 1.0) * 0.8 * (smooth - out)
    if fx.detail:
        blurred = ndimage.gaussian_filter(out, sigma=(1.2, 1.2, 0))
        out = out + 0.9 * fx.detail * (out - blurred)
    if fx.depth:
        # Depth cues: large-radius local contrast ("clarity") and a gentle vignette.
        base = ndimage.gaussian_filter(out, sigma=(12, 12, 0))
        out = out + 0.35 * fx.depth * (out - base)
        h, w = out.shape[:2]
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        r2 = ((yy - h / 2) / (h / 2)) ** 2 + ((xx - w / 2) / (w / 2)) ** 2
        out = out * (1 - 0.12 * fx.depth * np.clip(r2 - 0.3, 0, None))[..., None]
    return out


def _structure(rgb: np.ndarray, original: np.ndarray, structure_weight: float,
               strength: float, mode: str, seed: int) -> np.ndarray:
    freedom = (1.0 - structure_weight) * strength
    h, w = rgb.shape[:2]
    max_shift = 0.2 * freedom * (0.5 if mode == "structure" else 1.0) * max(h, w)
    out = rgb
    if max_shift > 0.05:
        rng = np.random.default_rng(seed)
        field = rng.standard_normal((2, max(2, h // 64), max(2, w // 64))).astype(np.float32)
        zoom = (h / field.shape[1], w / field.shape[2])
        dy = ndimage.zoom(field[0], zoom, order=3)[:h, :w]
        dx = ndimage.zoom(field[1], zoom, order=3)[:h, :w]
        scale = max_shift / max(float(np.abs(dy).max()), float(np.abs(dx).max()), 1e-6)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        coords = [yy + dy * scale, xx + dx * scale]
        out = np.stack(
            [ndimage.map_coordinates(rgb[..., c], coords, order=1, mode="reflect")
             for c in range(3)], axis=-1)
    soften = 6.0 * freedom
    if soften > 0.05:
        out = ndimage.gaussian_filter(out, sigma=(soften, soften, 0)) * 0.5 + out * 0.5
    return out


def _seed(image: bytes, parameters: dict[str, Any], prompt: str, base_seed: int) -> int:
    digest = hashlib.sha256(image + repr(sorted(parameters.items())).encode() + prompt.encode())
    return (int.from_bytes(digest.digest()[:8], "big") + base_seed) % (2**63)


def _decode(data: bytes, max_side: int) -> np.ndarray:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    if max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return np.asarray(image, dtype=np.float32) / 255.0


def _encode(rgb: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray((np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)).save(
        out, format="JPEG", quality=92)
    return out.getvalue()


class LocalProvider:
    """Deterministic procedural enhancer (same input → byte-identical output)."""

    name = "local"
    label_es = "Mejora procedimental local (no es un modelo de difusión)"
    label_en = "Local procedural enhancer (not a diffusion model)"
    model = "afinador-procedural-1"

    def __init__(self, max_side: int = 1024) -> None:
        self.max_side = max_side

    async def generate(self, request: GenerationRequest, progress: ProgressCallback
                       ) -> GenerationResult:
        params = request.parameters
        # Bounds a little wider than the optimizer's: the enhancer's formulas hold there.
        strength = require_number(params, "strength", 0.0, 1.0, LABEL)
        guidance = require_number(params, "guidance_scale", 1.0, 50.0, LABEL)
        structure = require_number(params, "controlnet_conditioning_scale", 0.0, 2.0, LABEL)
        fx = effect_amounts(request.prompt, request.negative_prompt, guidance, request.mode)
        seed = _seed(request.image, params, request.prompt, request.seed)

        await progress("prepare", 0.05)
        original = await asyncio.to_thread(_decode, request.image, self.max_side)
        await progress("light_and_tone", 0.25)
        toned = await asyncio.to_thread(_light_and_tone, original, fx)
        await progress("detail", 0.5)
        detailed = await asyncio.to_thread(_detail, toned, fx)
        await progress("structure", 0.75)
        adjusted = await asyncio.to_thread(
            _structure, detailed, original, structure, strength, request.mode, seed)
        blended = original + (strength / 0.3) * (adjusted - original)
        await progress("encode", 0.9)
        data = await asyncio.to_thread(_encode, blended)
        return GenerationResult(
            image=data,
            content_type="image/jpeg",
            model=self.model,
            details={"effects": {k: round(v, 3) for k, v in fx.__dict__.items()}, "seed": seed},
        )
