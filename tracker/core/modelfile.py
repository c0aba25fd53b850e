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
import pickle
import re
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
    """(FAN in eval mode, ModelInfo) from a checkpoint: a shipped `.pt` ({"model_info": JSON
    string, "state_dict"}) or a training run's best.pt/last.pt ({"model_config", "codec",
    "model", ...}).

    Only tensors and plain data are read (`torch.load(weights_only=True)`): a file holding
    any other Python object is refused with ModelFileError, and nothing in it runs."""
    import torch

    from tracker.core.model import FAN

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = _disallowed_object(str(e))
        if found is not None:
            raise ModelFileError(
                f"{path}: refused: it holds Python objects other than tensors and plain data "
                f"({found}); only weights are loaded, so nothing in it was run") from None
        raise ModelFileError(f"{path}: not a readable torch checkpoint ({_reason(e)})") from None
    except Exception as e:  # torch raises several types for a damaged file
        raise ModelFileError(f"{path}: not a readable torch checkpoint ({_reason(e)})") from None
    if not isinstance(ck, dict) or not ("model_info" in ck or "model_config" in ck):
        raise ModelFileError(f"{path}: neither a shipped model nor a training checkpoint")
    try:
        info, state = _checkpoint_contents(ck, path.parent.name)
    except (ValueError, KeyError, TypeError) as e:
        detail = f"no {e} field" if isinstance(e, KeyError) else str(e)
        raise ModelFileError(f"{path}: damaged metadata ({detail})") from None
    if not isinstance(state, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise ModelFileError(f"{path}: its weights are not a mapping of names to tensors")
    net = FAN(info.model)
    try:
        net.load_state_dict({k: v.float() for k, v in state.items()})
    except RuntimeError as e:
        detail = " ".join(str(e).split())
        raise ModelFileError(f"{path}: its weights do not fit the network its metadata describes "
                             f"({detail[:300]}{' ...' if len(detail) > 300 else ''})") from None
    return net.eval().to(device), info


def _checkpoint_contents(ck: dict, run_name: str) -> tuple[ModelInfo, object]:
    """(ModelInfo, weights) of a loaded checkpoint: a shipped model's JSON metadata, or a
    training checkpoint's config dicts (named after its run folder); ValueError, KeyError or
    TypeError when they are damaged."""
    if "model_info" in ck:
        if not isinstance(ck["model_info"], str):
            raise TypeError(f"'model_info' must be a JSON string, got {type(ck['model_info']).__name__}")
        return ModelInfo.from_json(ck["model_info"]), ck.get("state_dict")
    return (ModelInfo(run_name, ModelConfig.from_dict(ck["model_config"]),
                      HeatmapCodec.from_dict(ck["codec"])), ck.get("model"))


def _disallowed_object(message: str) -> str | None:
    """What torch's weights-only unpickler refused to create, from its error message: the
    global it names, or None when the error is something else (a damaged file)."""
    found = re.search(r"GLOBAL ([\w.]+)", message)
    if found:
        return found.group(1)
    if "allowlisted" in message:  # an object of a class that is not allowed
        return "an object of a class outside the allowed ones"
    return None


def _reason(e: Exception) -> str:
    """The gist of a torch.load error (the weights-only unpickler's is many lines long)."""
    text = str(e).strip()
    found = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", text)
    if found:
        return found.group(1).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__
