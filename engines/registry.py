"""The backends by name: one table, `load_backend` and `available_backends`, and which model
file a backend loads (`resolve_model`, `sibling`).

    backend = load_backend("onnxruntime", "tracker/models/rt-m.onnx", threads=2)

The GPU backends ("torch-cuda", "tensorrt") are imported only when asked for, by module name:
the one computed import of the project.
"""
from __future__ import annotations

import importlib
from pathlib import Path

from tracker.engines.backend import Backend, BackendUnavailable

from tracker.core.modelfile import ModelFileError, default_model_path

#: name -> (module, class) of the backends; the first is the default.
BACKENDS = {
    "onnxruntime": ("tracker.engines.onnxruntime_backend", "OnnxBackend"),
    "torch": ("tracker.engines.torch_backend", "TorchBackend"),
    "torch-cuda": ("tracker.engines.torch_cuda", "TorchCudaBackend"),
    "tensorrt": ("tracker.engines.tensorrt_backend", "TensorRTBackend"),
}


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
        from tracker.engines.onnxruntime_backend import OnnxBackend

        path = resolve_model(model_path, ".onnx")
        if path.suffix == ".pt":
            path = sibling(path, ".onnx")
        return OnnxBackend(path, threads)
    if name == "torch":
        from tracker.engines.torch_backend import TorchBackend

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
