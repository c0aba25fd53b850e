"""The backend protocol: a callable from network input to heatmaps, with the model's metadata.

    backend.info: ModelInfo                       # input size, normalisation, codec, scheme
    backend(x: (B, 3, H, W) float32) -> (B, K, h, w) float32

The backends themselves live one per module (`onnxruntime_backend`, `torch_backend`,
`torch_cuda`, `tensorrt_backend`) and are found by name through `tracker.engines.registry`.
Constructors load the model once; they never convert one format into another silently.

What the registry needs of a backend class, besides the protocol:

    model_suffix: str            # the file it loads, ".onnx" or ".pt" (the sibling is found)
    precisions: tuple[str, ...]  # what it runs; the first is its default
    from_options(path, options: BackendOptions) -> backend
    availability() -> str        # "available (...)", else raises saying why not

Optionally, a GPU backend decodes where its heatmaps lie (the CUDA local-soft-argmax kernel),
and the tracker's aligner then uses it instead of copying heatmaps back:

    backend.decode_on_device(x, to_frame: (B, 2, 3) input -> frame transforms)
        -> ((B, K, 2) frame-pixel points, (B, K) peak values)

This module imports nothing heavy (numpy only), so that any backend module may import it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from tracker.core.modelfile import ModelInfo


PRECISIONS = ("fp32", "fp16", "int8")


class BackendUnavailable(RuntimeError):
    """A backend whose packages or device are missing; the message says what to install."""


@dataclass(frozen=True)
class BackendOptions:
    """How to run a backend, besides which model; validated on creation. Each backend reads
    the fields that concern it and refuses a precision it does not run.

    threads: onnxruntime's intra-op threads (None: its default; the other backends ignore it).
    precision: "fp32", "fp16" or "int8" (a TensorRT engine built with calibration); None: the
        backend's default (fp32 on the CPU, fp16 on the GPU).
    batches: the batch sizes the GPU backends prepare for: torch-cuda captures a CUDA graph
        for each, tensorrt takes the engine built for batches up to the largest.
    build_if_missing: tensorrt builds its engine when none is cached (minutes; fp16 and fp32
        only) instead of refusing with the `engines build` command that builds it.
    spin: onnxruntime's pool threads wait spinning between operators: faster when the tracker
        has the machine's cores to itself (640x360: 248 -> 275 fps on 2 cores), CPU burnt
        for nothing when other processes need them (batch workers turn it off).
    """

    threads: int | None = None
    precision: str | None = None
    batches: tuple[int, ...] = (1, 8, 32)
    build_if_missing: bool = False
    spin: bool = True

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        if self.precision is not None and self.precision not in PRECISIONS:
            raise ValueError(f"precision {self.precision!r}; expected one of {PRECISIONS}")
        object.__setattr__(self, "batches", tuple(int(b) for b in self.batches))
        if not self.batches or min(self.batches) < 1:
            raise ValueError(f"batches must be >= 1, got {self.batches}")


def choose_precision(backend: str, supported: tuple[str, ...], asked: str | None) -> str:
    """`asked`, or the backend's default (`supported[0]`) for None; ValueError if the backend
    does not run it (a backend never swaps one precision for another silently)."""
    if asked is None:
        return supported[0]
    if asked not in supported:
        raise ValueError(f"the {backend} backend runs {' or '.join(supported)}, not {asked}")
    return asked


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
