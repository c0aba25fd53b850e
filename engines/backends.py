"""Inference backends: one tiny protocol, a callable from network input to heatmaps.

    backend.info: ModelInfo                       # input size, normalisation, codec, scheme
    backend(x: (B, 3, H, W) float32) -> (B, K, h, w) float32

`OnnxBackend` (onnxruntime, CPU) and `TorchBackend` live here; the GPU backends ("torch-cuda",
"tensorrt") live in `engines/` and are imported only when asked for. Constructors load the
model once; they never convert one format into another silently.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from tracker.core.modelfile import (
    INPUT_NAME,
    OUTPUT_NAME,
    ModelFileError,
    ModelInfo,
    default_model_path,
    load_torch,
    read_onnx_info,
)

#: name -> (module, class) of the backends; the first is the default.
BACKENDS = {
    "onnxruntime": ("tracker.engines.backends", "OnnxBackend"),
    "torch": ("tracker.engines.backends", "TorchBackend"),
    "torch-cuda": ("tracker.engines.torch_cuda", "TorchCudaBackend"),
    "tensorrt": ("tracker.engines.tensorrt_backend", "TensorRTBackend"),
}


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


class OnnxBackend:
    """onnxruntime on the CPU; one session, created here, graph optimisation on.

    `threads` sets onnxruntime's intra-op threads (None: its default, one per core). Spinning
    threads are turned off: the tracker's other stages share the cores."""

    name = "onnxruntime"

    def __init__(self, path: str | Path, threads: int | None = None):
        import onnxruntime as ort

        self.path = Path(path)
        self.info = read_onnx_info(self.path)
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads is not None:
            if threads < 1:
                raise ValueError(f"threads must be >= 1, got {threads}")
            so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(str(self.path), so,
                                                 providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            raise ModelFileError(f"{self.path}: onnxruntime cannot load it ({e})") from None
        self.device = "cpu"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = check_input(x, self.info)
        return self._session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]


class TorchBackend:
    """The torch model (`tracker.core.model.FAN`) from a shipped `.pt` (or a training checkpoint);
    given a `.onnx` path it loads the `.pt` beside it."""

    name = "torch"

    def __init__(self, path: str | Path, device: str = "cpu"):
        import torch

        self.path = sibling(Path(path), ".pt")
        self.device = device
        self._net, self.info = load_torch(self.path, device)
        self._torch = torch

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = check_input(x, self.info)
        torch = self._torch
        with torch.inference_mode():
            y = self._net(torch.from_numpy(x).to(self.device))
        return y.float().cpu().numpy()


def sibling(path: Path, suffix: str) -> Path:
    """`path` itself if it has `suffix`, else the file of the same stem with `suffix`; raises
    ModelFileError naming both when that file is missing."""
    if path.suffix == suffix:
        return path
    other = path.with_suffix(suffix)
    if not other.is_file():
        raise ModelFileError(f"{other}: no such model file (this backend needs the {suffix} "
                             f"beside {path.name})")
    return other


def resolve_model(model_path: str | Path | None, suffix: str = ".onnx") -> Path:
    """The model file to load: `model_path`, or the bundled default model."""
    if model_path is None:
        p = default_model_path(suffix)
        if not p.is_file():
            raise ModelFileError(
                f"the bundled model {p} is not there (this install ships without it); pass "
                f"--model PATH to a model exported with `engines export`")
        return p
    p = Path(model_path)
    if not p.exists():
        raise ModelFileError(f"{p}: no such model file")
    if p.is_dir():
        raise ModelFileError(f"{p}: is a folder, not a model file (.onnx or .pt)")
    return p


def load_backend(name: str = "onnxruntime", model_path: str | Path | None = None,
                 threads: int | None = None) -> Backend:
    """A backend by name ("onnxruntime", "torch", "torch-cuda", "tensorrt") for `model_path`
    (None: the bundled default model)."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; expected one of {list(BACKENDS)}")
    if name == "onnxruntime":
        path = resolve_model(model_path, ".onnx")
        if path.suffix == ".pt":
            path = sibling(path, ".onnx")
        return OnnxBackend(path, threads)
    if name == "torch":
        return TorchBackend(resolve_model(model_path, ".pt"), "cpu")
    module, cls = BACKENDS[name]
    try:
        backend_cls = getattr(importlib.import_module(module), cls)
    except ImportError as e:
        raise BackendUnavailable(
            f"backend {name!r} is not available here ({e}); it needs a CUDA GPU and "
            f"`pip install subpixel-tracker[gpu]` (TensorRT, pycuda) or a CUDA build of torch"
        ) from None
    except AttributeError:
        raise BackendUnavailable(f"backend {name!r}: {module} has no {cls}") from None
    if name == "torch-cuda":
        path = sibling(resolve_model(model_path, ".pt"), ".pt")
    else:
        path = resolve_model(model_path, ".onnx")
        if path.suffix == ".pt":
            path = sibling(path, ".onnx")
    try:
        return backend_cls(path)
    except BackendUnavailable as e:
        raise BackendUnavailable(f"backend {name!r} is not available here: {e}") from None
    except (ImportError, OSError, RuntimeError) as e:
        raise BackendUnavailable(f"backend {name!r} could not start ({e})") from None


def available_backends() -> dict[str, str]:
    """name -> "available" or the reason it is not, without loading any model."""
    out = {}
    for name, (module, _) in BACKENDS.items():
        try:
            if name == "onnxruntime":
                import onnxruntime as ort

                out[name] = f"available (onnxruntime {ort.__version__}, CPU)"
            elif name == "torch":
                import torch

                out[name] = f"available (torch {torch.__version__}, CPU)"
            else:
                importlib.import_module(module)
                if name == "torch-cuda":
                    import torch

                    if not torch.cuda.is_available():
                        out[name] = "unavailable: torch sees no CUDA device"
                        continue
                    out[name] = f"available (torch {torch.__version__}, {torch.cuda.get_device_name(0)})"
                else:
                    import tensorrt

                    out[name] = f"available (TensorRT {tensorrt.__version__})"
        except Exception as e:
            out[name] = f"unavailable: {type(e).__name__}: {e}"
    return out


__all__ = ["BACKENDS", "Backend", "BackendUnavailable", "ModelFileError", "OnnxBackend",
           "TorchBackend", "available_backends", "check_input", "load_backend", "resolve_model"]
