"""The backends by name: the one table of them, `load_backend`, `available_backends`, and the
model file a backend loads (`resolve_model`, `sibling`).

    backend = load_backend("onnxruntime", "tracker/models/rt-m.onnx", threads=2)
    backend = load_backend("torch-cuda", "rt-m.pt", options=BackendOptions(precision="fp32"))

A backend's module is imported only when that backend is asked for, by the module name in
`BACKENDS`: the one computed import of the project (so that the GPU backends, and their
packages, stay out of a CPU process).
"""
from __future__ import annotations

import importlib
from pathlib import Path

from tracker.core.modelfile import MODELS_DIR, ModelFileError, bundled_models, default_model_path
from tracker.engines.backend import Backend, BackendOptions, BackendUnavailable

#: name -> (module, class) of the backends; the first is the default.
BACKENDS = {
    "onnxruntime": ("tracker.engines.onnxruntime_backend", "OnnxBackend"),
    "torch": ("tracker.engines.torch_backend", "TorchBackend"),
    "torch-cuda": ("tracker.engines.torch_cuda", "TorchCudaBackend"),
    "tensorrt": ("tracker.engines.tensorrt_backend", "TensorRTBackend"),
}
DEFAULT_BACKEND = next(iter(BACKENDS))


def backend_class(name: str) -> type:
    """The class of backend `name` (its module imported now): the protocol plus `model_suffix`,
    `precisions`, `from_options` and `availability` (see `tracker.engines.backend`)."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; expected one of {list(BACKENDS)}")
    module, cls = BACKENDS[name]
    try:
        return getattr(importlib.import_module(module), cls)
    except ImportError as e:
        raise BackendUnavailable(f"backend {name!r} is not available here ({e})") from None


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
    """The model file to load: `model_path`, the bundled model of that name (`rt-sep`, `rt-sep2-192`:
    a bare name with no such file here), or the bundled default model (None)."""
    name = Path(model_path) if model_path is not None else None
    if name is not None and str(model_path) == name.name and not name.suffix and not name.exists():
        bundled = MODELS_DIR / f"{name}{suffix}"
        if bundled.is_file():
            return bundled
        raise ModelFileError(f"{name}: no such model file, nor a bundled model of that name "
                             f"({', '.join(p.stem for p in bundled_models(suffix))})")
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


def load_backend(name: str = DEFAULT_BACKEND, model_path: str | Path | None = None,
                 threads: int | None = None, options: BackendOptions | None = None) -> Backend:
    """Backend `name` ("onnxruntime", "torch", "torch-cuda", "tensorrt") for `model_path` (None:
    the bundled default model; given the .onnx of a backend that loads the .pt, or the other
    way round, the file of the same stem beside it).

    threads: onnxruntime's threads, short for `options=BackendOptions(threads=...)`; options:
    precision, batch sizes and the rest (the backend's defaults when None). A backend whose
    packages or device are missing raises BackendUnavailable; a bad model file, ModelFileError.
    """
    if options is None:
        options = BackendOptions(threads=threads)
    elif threads is not None:
        raise ValueError("give threads in options, not beside them")
    cls = backend_class(name)
    path = sibling(resolve_model(model_path, cls.model_suffix), cls.model_suffix)
    try:
        return cls.from_options(path, options)
    except BackendUnavailable as e:
        raise BackendUnavailable(f"backend {name!r} is not available here: {e}") from None
    except (ImportError, OSError, RuntimeError) as e:
        raise BackendUnavailable(f"backend {name!r} could not start ({e})") from None


def available_backends() -> dict[str, str]:
    """name -> "available (versions, device)" or "unavailable: why", loading no model."""
    out = {}
    for name in BACKENDS:
        try:
            out[name] = backend_class(name).availability()
        except BackendUnavailable as e:
            out[name] = f"unavailable: {e}"
        except Exception as e:  # noqa: BLE001 - a package that fails to import, whatever the way
            out[name] = f"unavailable: {type(e).__name__}: {e}"
    return out
