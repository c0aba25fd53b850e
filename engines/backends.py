"""Kept for importers outside engines/; import from tracker.engines.registry.

The old home of the backend protocol, the CPU backends and the registry, which now live in
`tracker.engines.backend`, `onnxruntime_backend`, `torch_backend` and `registry`; this module
only re-exports their names.
"""
from tracker.engines.backend import Backend, BackendUnavailable, check_input
from tracker.engines.onnxruntime_backend import OnnxBackend
from tracker.engines.registry import (
    BACKENDS,
    available_backends,
    load_backend,
    resolve_model,
    sibling,
)
from tracker.engines.torch_backend import TorchBackend

from tracker.core.modelfile import ModelFileError

__all__ = ["BACKENDS", "Backend", "BackendUnavailable", "ModelFileError", "OnnxBackend",
           "TorchBackend", "available_backends", "check_input", "load_backend", "resolve_model",
           "sibling"]
