"""onnxruntime on the CPU as a tracker backend (the protocol: `tracker.engines.backend`).

onnxruntime is imported by the constructor, so this module imports anywhere.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tracker.core.modelfile import INPUT_NAME, OUTPUT_NAME, ModelFileError, info_from_metadata
from tracker.engines.backend import BackendOptions, check_input, choose_precision


class OnnxBackend:
    """onnxruntime on the CPU; one session, created here, graph optimisation on.

    `threads` sets onnxruntime's intra-op threads (None: its default, one per core); `spin`
    lets them wait spinning between operators (see `BackendOptions.spin`)."""

    name = "onnxruntime"
    model_suffix = ".onnx"
    precisions = ("fp32",)

    def __init__(self, path: str | Path, threads: int | None = None, spin: bool = True):
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise ModelFileError(f"{self.path}: no such model file")
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads is not None:
            if threads < 1:
                raise ValueError(f"threads must be >= 1, got {threads}")
            so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        try:
            self._session = ort.InferenceSession(str(self.path), so,
                                                 providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            raise ModelFileError(f"{self.path}: onnxruntime cannot load it ({e})") from None
        self.info = info_from_metadata(self._session.get_modelmeta().custom_metadata_map, self.path)
        self.device = "cpu"

    @classmethod
    def from_options(cls, path: Path, options: BackendOptions) -> OnnxBackend:
        choose_precision(cls.name, cls.precisions, options.precision)
        return cls(path, options.threads, options.spin)

    @staticmethod
    def availability() -> str:
        import onnxruntime as ort

        return f"available (onnxruntime {ort.__version__}, CPU)"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = check_input(x, self.info)
        return self._session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
