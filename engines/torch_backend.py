"""The torch model on the CPU as a tracker backend (the protocol: `tracker.engines.backend`).

torch is imported by the constructor, so this module imports anywhere.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tracker.core.modelfile import load_torch
from tracker.engines.backend import BackendOptions, check_input, choose_precision
from tracker.engines.registry import sibling


class TorchBackend:
    """The torch model (`tracker.core.model.FAN`) from a shipped `.pt` (or a training checkpoint);
    given a `.onnx` path it loads the `.pt` beside it."""

    name = "torch"
    model_suffix = ".pt"
    precisions = ("fp32",)

    def __init__(self, path: str | Path, device: str = "cpu"):
        import torch

        self.path = sibling(Path(path), ".pt")
        self.device = device
        self._net, self.info = load_torch(self.path, device)
        self._torch = torch

    @classmethod
    def from_options(cls, path: Path, options: BackendOptions) -> TorchBackend:
        choose_precision(cls.name, cls.precisions, options.precision)
        return cls(path, "cpu")

    @staticmethod
    def availability() -> str:
        import torch

        return f"available (torch {torch.__version__}, CPU)"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = check_input(x, self.info)
        torch = self._torch
        with torch.inference_mode():
            y = self._net(torch.from_numpy(x).to(self.device))
        return y.float().cpu().numpy()
