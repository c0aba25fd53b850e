"""What travels with a model's weights: architecture, input contract and codec settings.

A model ships as ONNX (`<name>.onnx`, for onnxruntime and TensorRT) and as a torch checkpoint
(`<name>.pt`, for the torch backends). Both carry a `ModelInfo` as JSON: in the ONNX file's
metadata under `METADATA_KEY`, in the checkpoint under "model_info". The network's input is
"input", (B, 3, H, W) float32 RGB normalised as (pixel / 255 - mean) / std; its output is
"heatmaps", (B, K, h, w) float32. A face crop is taken around a face box as
`tracker.core.geometry.crop_transform(box, input_hw, crop_ratio)`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tracker.core.codec import HeatmapCodec
from tracker.core.geometry import CROP_RATIO
from tracker.core.model_config import ModelConfig

METADATA_KEY = "tracker.model_info"
INPUT_NAME = "input"
OUTPUT_NAME = "heatmaps"
MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
DEFAULT_MODEL = "rt-m"


@dataclass(frozen=True)
class ModelInfo:
    name: str
    model: ModelConfig
    codec: HeatmapCodec
    scheme: str = "ibug68"
    crop_ratio: float = CROP_RATIO

    def to_json(self) -> str:
        return json.dumps({"name": self.name, "model": self.model.to_dict(),
                           "codec": self.codec.to_dict(), "scheme": self.scheme,
                           "crop_ratio": self.crop_ratio})

    @classmethod
    def from_json(cls, text: str) -> "ModelInfo":
        d = json.loads(text)
        return cls(d["name"], ModelConfig.from_dict(d["model"]), HeatmapCodec.from_dict(d["codec"]),
                   d.get("scheme", "ibug68"), float(d.get("crop_ratio", CROP_RATIO)))

    def normalise(self, crops: np.ndarray) -> np.ndarray:
        """(B, H, W, 3) uint8 RGB crops -> (B, 3, H, W) float32 network input."""
        return self.model.normalise(crops)


def default_model_path(suffix: str = ".onnx") -> Path:
    """The bundled default model (`tracker/models/rt-m.onnx` or `.pt`)."""
    return MODELS_DIR / f"{DEFAULT_MODEL}{suffix}"


class ModelFileError(ValueError):
    """A model file that is missing, unreadable or lacks the tracker's metadata."""


def read_onnx_info(path: str | Path) -> ModelInfo:
    """The `ModelInfo` stored in an ONNX file's metadata."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    try:
        m = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # onnx raises several types for a damaged file
        raise ModelFileError(f"{path}: not a readable ONNX model ({e})") from None
    props = {p.key: p.value for p in m.metadata_props}
    if METADATA_KEY not in props:
        raise ModelFileError(f"{path}: no '{METADATA_KEY}' metadata; export it with `engines export`")
    try:
        return ModelInfo.from_json(props[METADATA_KEY])
    except (ValueError, KeyError, TypeError) as e:
        raise ModelFileError(f"{path}: damaged '{METADATA_KEY}' metadata ({e!r})") from None


def load_torch(path: str | Path, device: str = "cpu"):
    """(FAN in eval mode, ModelInfo) from a checkpoint: a shipped `.pt` ({"model_info",
    "state_dict"}) or a training run's best.pt/last.pt."""
    import torch

    from tracker.core.model import FAN

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise ModelFileError(f"{path}: not a readable torch checkpoint ({e})") from None
    if not isinstance(ck, dict):
        raise ModelFileError(f"{path}: neither a shipped model nor a training checkpoint")
    if "model_info" in ck:
        info = ModelInfo.from_json(ck["model_info"])
        state = ck["state_dict"]
    elif "model_config" in ck:  # a training checkpoint
        info = ModelInfo(path.parent.name, ModelConfig.from_dict(ck["model_config"]),
                         HeatmapCodec.from_dict(ck["codec"]))
        state = ck["model"]
    else:
        raise ModelFileError(f"{path}: neither a shipped model nor a training checkpoint")
    net = FAN(info.model)
    net.load_state_dict({k: v.float() for k, v in state.items()})
    return net.eval().to(device), info
