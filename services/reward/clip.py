"""CLIP image embeddings from a local transformers checkpoint (optional).

``REWARD_CLIP_MODEL`` names a directory written by ``save_pretrained`` (a CLIP or
CLIP-vision config, weights, and an image-processor config). Nothing is ever
downloaded (``local_files_only``). The vision tower is loaded as
``CLIPVisionModelWithProjection`` when the checkpoint has a trained projection
(embedding = ``image_embeds``), otherwise as ``CLIPVisionModel`` (embedding =
``pooler_output``). Embeddings are L2-normalised float32 vectors.

torch and transformers are imported only here, only when a directory is configured;
without them, or without weights, :func:`load_clip` returns ``None`` and a sentence
saying why, which ``/ml/models`` reports. On a CUDA device the model runs in fp16.

:class:`ClipEmbedder` contract: ``embed`` takes RGB ``uint8`` arrays of any sizes,
processes them in batches of ``batch_size`` and is thread-safe (one forward pass at a
time); ``version`` identifies the checkpoint (cache key of its embeddings).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


class ClipEmbedder:
    """A loaded CLIP vision tower and its image processor."""

    def __init__(
        self,
        model: Any,
        processor: Any,
        *,
        version: str,
        dims: int,
        device: str,
        dtype_name: str,
        batch_size: int,
        projection: bool,
    ) -> None:
        self._model = model
        self._processor = processor
        self._lock = threading.Lock()
        self.version = version
        self.dims = dims
        self.device = device
        self.dtype_name = dtype_name
        self.batch_size = batch_size
        self.projection = projection

    def describe(self) -> str:
        head = "image_embeds (projection)" if self.projection else "pooler_output"
        return f"{self.version}: {self.dims}-d {head} on {self.device} in {self.dtype_name}"

    def embed(self, images: list[np.ndarray]) -> np.ndarray:
        """``len(images)×dims`` L2-normalised embeddings, in input order."""
        import torch

        if not images:
            return np.zeros((0, self.dims), dtype=np.float32)
        out = []
        dtype = next(self._model.parameters()).dtype
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            pixels = self._processor(images=list(chunk), return_tensors="pt")["pixel_values"]
            with self._lock, torch.inference_mode():
                result = self._model(pixel_values=pixels.to(self.device, dtype=dtype))
                emb = result.image_embeds if self.projection else result.pooler_output
                out.append(emb.float().cpu().numpy())
        vectors = np.concatenate(out).astype(np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        result_array: np.ndarray = vectors / np.maximum(norms, 1e-12)
        return result_array


def _version(path: Path) -> str:
    digest = hashlib.sha256((path / "config.json").read_bytes()).hexdigest()[:12]
    return f"clip:{path.name[:32]}:{digest}"


def load_clip(
    model_dir: str, *, device: str = "auto", batch_size: int = 32
) -> tuple[ClipEmbedder | None, str]:
    """Load the checkpoint in ``model_dir``; ``(None, why)`` when CLIP is unavailable."""
    if not model_dir:
        return None, "REWARD_CLIP_MODEL not set"
    path = Path(model_dir)
    if not (path / "config.json").is_file():
        return None, (
            f"REWARD_CLIP_MODEL={model_dir} is not a directory with config.json "
            "(weights are loaded from a local directory only, never downloaded)"
        )
    try:
        import torch
        from transformers import CLIPImageProcessor, CLIPVisionModel, CLIPVisionModelWithProjection
    except ImportError as exc:
        return None, f"torch/transformers not installed ({exc}); see requirements-ml.txt"
    try:
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.float16 if device.startswith("cuda") else torch.float32
        loader: Any = CLIPVisionModelWithProjection
        loaded: Any = loader.from_pretrained(path, local_files_only=True, output_loading_info=True)
        model: Any = loaded[0]
        missing = loaded[1].get("missing_keys", [])
        projection = not any("visual_projection" in k for k in missing)
        if not projection:
            plain: Any = CLIPVisionModel
            model = plain.from_pretrained(path, local_files_only=True)
        model = model.to(device=device, dtype=dtype).eval()
        processor = CLIPImageProcessor.from_pretrained(path, local_files_only=True)
        config = model.config
        dims = int(config.projection_dim if projection else config.hidden_size)
        embedder = ClipEmbedder(
            model,
            processor,
            version=_version(path),
            dims=dims,
            device=device,
            dtype_name=str(dtype).removeprefix("torch."),
            batch_size=batch_size,
            projection=projection,
        )
    except Exception as exc:  # any failure to load means "no CLIP", with the reason
        log.warning("CLIP weights in %s could not be loaded: %s", model_dir, exc)
        return None, f"CLIP weights in {model_dir} could not be loaded: {exc}"
    log.info("CLIP loaded: %s", embedder.describe())
    return embedder, f"loaded {embedder.describe()}"
