"""Before/after gallery of the local procedural enhancer (`python -m scripts.local_gallery`).

Renders a synthetic interior (walls in perspective, floor boards, a window, a sofa,
a rug), runs it through the local provider with one parameter or prompt term
changed at a time, and writes a labelled contact sheet to docs/img/local_gallery.jpg.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from services.gateway.providers import GenerationRequest, LocalProvider, no_progress

OUT = Path(__file__).resolve().parents[1] / "docs" / "img" / "local_gallery.jpg"
BASE_PROMPT = "interior render"
TILE = (360, 240)


def synthetic_room(width: int = 720, height: int = 480) -> bytes:
    """A flat-shaded 'render': the kind of image the enhancer is meant to improve."""
    img = Image.new("RGB", (width, height), (214, 206, 192))
    draw = ImageDraw.Draw(img)
    vx = width * 0.5  # vanishing point's x
    back = (width * 0.28, height * 0.2, width * 0.72, height * 0.62)
    draw.polygon([(0, 0), (back[0], back[1]), (back[0], back[3]), (0, height)],
                 fill=(196, 188, 172))
    draw.polygon([(width, 0), (back[2], back[1]), (back[2], back[3]), (width, height)],
                 fill=(204, 196, 180))
    draw.polygon([(0, height), (back[0], back[3]), (back[2], back[3]), (width, height)],
                 fill=(150, 112, 78))
    for i in range(-6, 7):  # floor boards converging to the vanishing point
        x = width * 0.5 + i * width * 0.09
        draw.line([(x, height), (vx + (x - vx) * 0.44, back[3])], fill=(128, 94, 64), width=2)
    draw.rectangle(back, outline=(170, 160, 145), width=2)
    draw.rectangle((width * 0.55, height * 0.26, width * 0.68, height * 0.46), fill=(232, 240, 247),
                   outline=(120, 120, 120), width=3)
    draw.rectangle((width * 0.32, height * 0.48, width * 0.5, height * 0.6), fill=(70, 82, 110))
    draw.rectangle((width * 0.32, height * 0.44, width * 0.5, height * 0.5), fill=(84, 96, 126))
    draw.ellipse((width * 0.3, height * 0.66, width * 0.7, height * 0.86), fill=(170, 60, 50))
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=95)
    return out.getvalue()


VARIANTS: list[tuple[str, dict[str, float], str, str]] = [
    ("strength 0.1", {"strength": 0.1}, "", ""),
    ("strength 0.5", {"strength": 0.5}, "", ""),
    ("guidance 5", {"guidance": 5.0}, "", ""),
    ("guidance 12", {"guidance": 12.0}, "", ""),
    ("structure 0.99", {"structure": 0.99, "strength": 0.5}, "", ""),
    ("structure 0.70", {"structure": 0.70, "strength": 0.5}, "", ""),
    ("+ natural light", {}, "natural light, bright daylight", ""),
    ("+ high contrast", {}, "high contrast, dramatic", ""),
    ("+ sharp detail", {}, "sharp focus, 8k detail, texture", ""),
    ("+ warm", {}, "warm golden cozy light", ""),
    ("+ soft shadows, depth", {}, "soft shadows, depth, ambient occlusion", ""),
    ("neg: noisy, grainy", {}, "", "noisy, grainy"),
]


async def render(original: bytes, overrides: dict[str, float], terms: str, negative: str
                 ) -> Image.Image:
    values = {"strength": 0.3, "guidance": 9.0, "structure": 0.9, **overrides}
    prompt = BASE_PROMPT + ", photorealistic, " + (terms or "natural light, sharp detail")
    request = GenerationRequest(
        image=original, mode="surfaces", prompt=prompt, negative_prompt=negative,
        parameters={"api": "local", "strength": values["strength"],
                    "guidance_scale": values["guidance"],
                    "controlnet_conditioning_scale": values["structure"]})
    result = await LocalProvider().generate(request, no_progress)
    return Image.open(io.BytesIO(result.image)).convert("RGB")


def label(tile: Image.Image, text: str) -> Image.Image:
    tile = tile.resize(TILE)
    draw = ImageDraw.Draw(tile)
    draw.rectangle((0, 0, TILE[0], 22), fill=(0, 0, 0))
    draw.text((6, 5), text, fill=(255, 255, 255))
    return tile


async def main() -> None:
    original = synthetic_room()
    tiles = [label(Image.open(io.BytesIO(original)), "original (synthetic render)")]
    defaults = "defaults: strength 0.3, guidance 9, structure 0.9"
    tiles.append(label(await render(original, {}, "", ""), defaults))
    for name, overrides, terms, negative in VARIANTS:
        tiles.append(label(await render(original, overrides, terms, negative), name))
    columns = 4
    rows = int(np.ceil(len(tiles) / columns))
    sheet = Image.new("RGB", (columns * TILE[0], rows * TILE[1]), (255, 255, 255))
    for i, tile in enumerate(tiles):
        sheet.paste(tile, ((i % columns) * TILE[0], (i // columns) * TILE[1]))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(OUT, quality=88)
    print(f"wrote {OUT} ({len(tiles)} tiles)")


if __name__ == "__main__":
    asyncio.run(main())
