"""The backend protocol: a callable from network input to heatmaps, with the model's metadata.

    backend.info: ModelInfo                       # input size, normalisation, codec, scheme
    backend(x: (B, 3, H, W) float32) -> (B, K, h, w) float32

The backends themselves live one per module (`onnxruntime_backend`, `torch_backend`,
`torch_cuda`, `tensorrt_backend`) and are found by name through `tracker.engines.registry`.
Constructors load the model once; they never convert one format into another silently.

This module imports nothing heavy (numpy only), so that any backend module may import it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from tracker.core.modelfile import ModelInfo


class BackendUnavailable(RuntimeError):
    """A backend whose packages or device are missing; the message says what to install."""


@runtime_checkable
class Backend(Protocol):
    info: ModelInfo

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(B, 3, H, W) float32 normalised input -> (B, K, h, w) float32 heatmaps."""
        ...


def check_input(x: np.ndarray, info: ModelInfo) -> np.ndarray:
    """`x` as a C-contiguous float32 (B, 3, H, W) array matching the model, else ValueError."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    h, w = info.model.input_hw
    if x.ndim != 4 or x.shape[1:] != (3, h, w):
        raise ValueError(f"backend input must be (B, 3, {h}, {w}) float32, got {x.shape}")
    return x
