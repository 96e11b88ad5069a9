"""CLIP ViT-B/32 image-embedding throughput on a GPU (random weights).

Throughput does not depend on weight values, so the real ViT-B/32 architecture is
built from its config with random weights (nothing is downloaded). In one run:

1. the GPU's measured dense matrix-multiply peak (bf16 and fp16 8192³ GEMMs);
2. reference: a plain ``transformers`` ``CLIPVisionModel`` in bf16, model only;
3. ours, model only: ``CLIPVisionModelWithProjection`` in bf16 and fp16 with SDPA
   attention, ``torch.compile`` (max-autotune, static shapes per batch size) and
   inference mode, on preprocessed tensors already on the GPU;
4. ours, end to end from JPEG bytes: ``torchvision.io.decode_jpeg`` on the GPU
   (nvJPEG, batched), resize to 224 (antialiased bilinear) + centre crop + CLIP
   normalisation on the GPU, then the compiled model. Without torchvision the
   decode falls back to Pillow in a CPU thread pool and the row says so.

Images/s are from CUDA-event timings after warm-up; "fraction of peak" is
``images/s × FLOP/image / measured peak``, with FLOP/image computed from the
architecture (about 8.7 GFLOP for ViT-B/32 at 224 px).

Usage (on the GPU machine)::

    .venv/bin/python -m bench.clip_gpu          # full run; writes bench/results/reward.gpu.json
    .venv/bin/python -m bench.clip_gpu --smoke  # tiny model on the CPU: checks the code path
"""

from __future__ import annotations

import argparse
import io
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "reward.gpu.json"
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


def vit_b32_config(smoke: bool) -> Any:
    from transformers import CLIPVisionConfig

    if smoke:
        return CLIPVisionConfig(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=224,
            patch_size=32,
            projection_dim=32,
        )
    return CLIPVisionConfig(
        hidden_size=768,
        intermediate_size=3072,
        num_hidden_layers=12,
        num_attention_heads=12,
        image_size=224,
        patch_size=32,
        projection_dim=512,
    )


def flops_per_image(cfg: Any) -> float:
    """Forward FLOPs (2 per multiply-add) of a CLIP vision tower + projection."""
    d, f, layers = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    patches = (cfg.image_size // cfg.patch_size) ** 2
    n = patches + 1
    patch_embed = patches * 3 * cfg.patch_size**2 * d
    per_layer = n * (4 * d * d + 2 * d * f) + 2 * n * n * d  # projections, MLP, QKᵀ and AV
    projection = d * cfg.projection_dim
    return 2.0 * (patch_embed + layers * per_layer + projection)


def timed(fn: Callable[[], Any], device: str, repeats: int, warmup: int = 3) -> float:
    """Seconds per call (CUDA events on a GPU, perf_counter on the CPU)."""
    import torch

    for _ in range(warmup):
        fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(repeats):
            fn()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / 1e3 / repeats
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def matmul_peak(device: str, dtype: Any, size: int) -> float:
    import torch

    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    seconds = timed(lambda: a @ b, device, repeats=20 if device.startswith("cuda") else 2)
    return 2.0 * size**3 / seconds


def synthetic_jpegs(count: int, size: int = 512, quality: int = 90) -> list[bytes]:
    """Photo-like JPEGs (smooth gradients, shapes and noise), all different."""
    from PIL import Image

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size, 0:size] / size
    out = []
    for i in range(count):
        img = np.stack([120 + 80 * x, 100 + 90 * y, 140 - 60 * x * y], axis=-1)
        cx, cy, r = rng.uniform(0.2, 0.8, 3)
        img[(x - cx) ** 2 + (y - cy) ** 2 < (r / 3) ** 2] = rng.uniform(0, 255, 3)
        img += rng.normal(0, 6, img.shape)
        buf = io.BytesIO()
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=quality)
        out.append(buf.getvalue())
        if i == 63:  # reuse a pool of 64 distinct images
            break
    return [out[i % len(out)] for i in range(count)]


def gpu_preprocess(images: list[Any], size: int, dtype: Any) -> Any:
    """uint8 CHW images (any sizes) → normalised ``B×3×size×size`` on their device."""
    import torch
    import torch.nn.functional as F

    batch = []
    for img in images:
        _, h, w = img.shape
        scale = size / min(h, w)
        nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
        resized = F.interpolate(
            img[None].float(), size=(nh, nw), mode="bilinear", antialias=True, align_corners=False
        )
        top, left = (nh - size) // 2, (nw - size) // 2
        batch.append(resized[..., top : top + size, left : left + size])
    x = torch.cat(batch) / 255.0
    mean = torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x.device).view(1, 3, 1, 1)
    return ((x - mean) / std).to(dtype)


def decoder(device: str) -> tuple[str, Callable[[list[bytes]], list[Any]]]:
    import torch

    try:
        from torchvision.io import decode_jpeg

        def decode_gpu(blobs: list[bytes]) -> list[Any]:
            data = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in blobs]
            return list(decode_jpeg(data, device=device))

        return f"torchvision.io.decode_jpeg on {device}", decode_gpu
    except ImportError:
        from PIL import Image

        pool = ThreadPoolExecutor(16)

        def one(b: bytes) -> Any:
            arr = np.array(Image.open(io.BytesIO(b)).convert("RGB"))
            return torch.from_numpy(arr).permute(2, 0, 1)

        def decode_cpu(blobs: list[bytes]) -> list[Any]:
            return [t.to(device, non_blocking=True) for t in pool.map(one, blobs)]

        return "Pillow on CPU threads (torchvision not installed)", decode_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny model, CPU allowed")
    parser.add_argument("--batches", default="1,8,32,64,128,256")
    parser.add_argument("--reference-batches", default="256,512,1024")
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args()

    import torch
    from transformers import CLIPVisionModel, CLIPVisionModelWithProjection

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and not args.smoke:
        raise SystemExit("no CUDA device: this benchmark needs a GPU (use --smoke to test it)")
    cfg = vit_b32_config(args.smoke)
    flop = flops_per_image(cfg)
    batches = [int(b) for b in args.batches.split(",")]
    ref_batches = [int(b) for b in args.reference_batches.split(",")]
    if args.smoke:
        batches, ref_batches = [1, 8], [8]
    repeats = 20 if device == "cuda" else 2
    gemm = 8192 if device == "cuda" else 512
    peaks = {
        "bf16": matmul_peak(device, torch.bfloat16, gemm),
        "fp16": matmul_peak(device, torch.float16, gemm) if device == "cuda" else 0.0,
    }
    print(
        f"device {torch.cuda.get_device_name() if device == 'cuda' else 'cpu'}; "
        f"{flop / 1e9:.2f} GFLOP/image; matmul peak bf16 {peaks['bf16'] / 1e12:.0f} TFLOP/s, "
        f"fp16 {peaks['fp16'] / 1e12:.0f} TFLOP/s"
    )
    rows: list[dict[str, Any]] = []

    def record(path: str, dtype_name: str, batch: int, seconds: float) -> None:
        ips = batch / seconds
        peak = peaks[dtype_name] or peaks["bf16"]
        rows.append(
            {
                "path": path,
                "dtype": dtype_name,
                "batch": batch,
                "images_per_s": ips,
                "fraction_of_peak": ips * flop / peak,
            }
        )
        print(
            f"{path:<34} {dtype_name:<5} batch {batch:5d}: {ips:10.0f} images/s "
            f"({100 * ips * flop / peak:5.1f} % of peak)",
            flush=True,
        )

    # Reference: plain transformers CLIPVisionModel, bf16, model only.
    torch.manual_seed(0)
    ref = CLIPVisionModel(cfg).to(device, torch.bfloat16).eval()
    for b in ref_batches:
        x = torch.randn(b, 3, 224, 224, device=device, dtype=torch.bfloat16)
        with torch.inference_mode():
            record(
                "reference transformers model-only",
                "bf16",
                b,
                timed(lambda x=x, m=ref: m(pixel_values=x).pooler_output, device, repeats),
            )

    decode_name, decode = decoder(device)
    jpegs = synthetic_jpegs(max(batches))
    for dtype_name, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
        if device == "cpu" and dtype_name == "fp16":
            continue
        model = CLIPVisionModelWithProjection._from_config(cfg, attn_implementation="sdpa")
        model = model.to(device, dtype).eval()
        forward = (
            model
            if args.no_compile or device == "cpu"
            else torch.compile(model, mode="max-autotune", dynamic=False)
        )
        for b in batches:
            x = torch.randn(b, 3, 224, 224, device=device, dtype=dtype)
            with torch.inference_mode():
                record(
                    "ours model-only",
                    dtype_name,
                    b,
                    timed(lambda x=x, f=forward: f(pixel_values=x).image_embeds, device, repeats),
                )
        for b in batches:
            blobs = jpegs[:b]

            def end_to_end(blobs: list[bytes] = blobs, f: Any = forward, dt: Any = dtype) -> Any:
                with torch.inference_mode():
                    pixels = gpu_preprocess(decode(blobs), 224, dt)
                    return f(pixel_values=pixels).image_embeds

            record("ours end-to-end from JPEG", dtype_name, b, timed(end_to_end, device, repeats))

    result = {
        "command": ".venv/bin/python -m bench.clip_gpu" + (" --smoke" if args.smoke else ""),
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "torch": torch.__version__,
        "flop_per_image": flop,
        "matmul_peak_flops": peaks,
        "decode": decode_name,
        "jpeg": "512×512 synthetic, quality 90",
        "rows": rows,
    }
    if not args.smoke:
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
