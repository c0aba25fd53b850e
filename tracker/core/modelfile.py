"""What travels with a model's weights: architecture, input contract and codec settings.

A model ships as ONNX (`<name>.onnx`, for onnxruntime and TensorRT) and as a torch checkpoint
(`<name>.pt`, for the torch backends). Both carry a `ModelInfo` as JSON: in the ONNX file's
metadata under `METADATA_KEY`, in the checkpoint under "model_info". The network's input is
"input", (B, 3, H, W) float32 RGB normalised as (pixel / 255 - mean) / std; its output is
"heatmaps", (B, K, h, w) float32. A face crop is taken around a face box as
`tracker.core.geometry.crop_transform(box, input_hw, crop_ratio)`.
"""
from __future__ import annotations

import dataclasses
import json
import math
import pickle
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from tracker.core.codec import HeatmapCodec
from tracker.core.geometry import CROP_RATIO
from tracker.core.model_config import ModelConfig

METADATA_KEY = "tracker.model_info"
INPUT_NAME = "input"
OUTPUT_NAME = "heatmaps"
MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
DEFAULT_MODEL = "rt-sep-kd"
#: The default model's architecture (`tracker.core.model_config.PRESETS`): a bundled name is
#: a set of weights, a preset a network, and several weights may share one network.
DEFAULT_PRESET = "rt-sep"
#: What each bundled preset is for, as `tracker info` and `--model`'s help say it.
ROLES = {DEFAULT_MODEL: "the default", "rt-sep-112-kd": "fast", "rt-sep2-192": "accurate"}


@dataclass(frozen=True)
class ModelInfo:
    name: str
    model: ModelConfig
    codec: HeatmapCodec
    scheme: str = "ibug68"
    crop_ratio: float = CROP_RATIO
    # per-point offsets added after decoding, (K, 2) flattened x0, y0, x1, ...; () = none
    # (`tracker.core.calibration`)
    offsets: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.offsets and len(self.offsets) != 2 * self.model.n_points:
            raise ValueError(f"offsets must hold 2 x {self.model.n_points} numbers, got {len(self.offsets)}")

    @property
    def point_offsets(self) -> np.ndarray | None:
        """The offsets as (K, 2), or None."""
        return np.asarray(self.offsets, np.float64).reshape(-1, 2) if self.offsets else None

    def to_json(self) -> str:
        d = {"name": self.name, "model": self.model.to_dict(), "codec": self.codec.to_dict(),
             "scheme": self.scheme, "crop_ratio": self.crop_ratio}
        if self.offsets:
            d["offsets"] = list(self.offsets)
        return json.dumps(d)

    @classmethod
    def from_json(cls, text: str) -> ModelInfo:
        """The ModelInfo of a model file's metadata, read as untrusted input: every field's
        type is checked, unknown fields are refused, fields missing from older files take
        their defaults; ModelFileError naming the field when one is wrong."""
        try:
            d = json.loads(text)
        except (TypeError, ValueError) as e:
            raise ModelFileError(f"not JSON ({e})") from None
        info = parse_fields(cls, d, "")
        for hw in ("input_hw", "heatmap_hw"):
            if getattr(info.codec, hw) != getattr(info.model, hw):
                raise ModelFileError(f"field 'codec.{hw}' {getattr(info.codec, hw)} differs from "
                                     f"'model.{hw}' {getattr(info.model, hw)}")
        if not info.crop_ratio > 0:
            raise ModelFileError(f"field 'crop_ratio' must be positive, got {info.crop_ratio}")
        return info

    def normalise(self, crops: np.ndarray) -> np.ndarray:
        """(B, H, W, 3) uint8 RGB crops -> (B, 3, H, W) float32 network input."""
        return self.model.normalise(crops)


# -- metadata, read as untrusted input ----------------------------------------------------------
_KINDS = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def parse_fields(cls: type, value: object, field: str):
    """An instance of dataclass `cls` (ModelInfo, ModelConfig, HeatmapCodec) from the JSON
    object `value`, each field checked against its annotation (lists become tuples; a dataclass
    field is parsed the same way) before `cls` validates their values. `field` names `value` in
    errors ("" for the top level): ModelFileError("field 'model.width' must be an integer, got
    '96'")."""
    where = f"field {field!r}" if field else "the metadata"
    if not isinstance(value, dict):
        raise ModelFileError(f"{where} must be a JSON object, got {type(value).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    prefix = f"{field}." if field else ""
    for name in value:
        if name not in fields:
            raise ModelFileError(f"unknown field {prefix + str(name)!r}")
    for name, f in fields.items():
        if name not in value and f.default is dataclasses.MISSING:
            raise ModelFileError(f"field {prefix + name!r} is missing")
    kwargs = {name: _parse_value(v, hints[name], prefix + name) for name, v in value.items()}
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as e:
        raise ModelFileError(f"{where}: {e}") from None


def _parse_value(value: object, tp: object, field: str):
    """`value` checked against annotation `tp` (int, float, str, bool, a fixed-length or
    `...` tuple of those, a dataclass); ModelFileError naming `field` when it does not fit."""
    if dataclasses.is_dataclass(tp):
        return parse_fields(tp, value, field)
    if typing.get_origin(tp) is tuple:
        args = typing.get_args(tp)
        seq = isinstance(value, (list, tuple))  # JSON gives lists; a torch checkpoint, tuples
        items = args[:1] * len(value) if seq and len(args) == 2 and args[1] is Ellipsis else args
        if not seq or len(value) != len(items):
            raise ModelFileError(f"field {field!r} must be a list of {len(items)} "
                                 f"{_KINDS[args[0]].split(' ', 1)[1]}s, got {value!r}")
        return tuple(_parse_value(v, t, f"{field}[{i}]") for i, (v, t) in enumerate(zip(value, items)))
    if tp not in _KINDS:
        raise TypeError(f"no check for {tp!r} (field {field!r})")  # a new kind of field
    if not _fits(value, tp):
        raise ModelFileError(f"field {field!r} must be {_KINDS[tp]}, got {value!r}")
    return float(value) if tp is float else value


def _fits(value: object, tp: type) -> bool:
    """Whether a JSON value is of scalar type `tp` (a bool is no number; a number is finite)."""
    if isinstance(value, bool) or tp is bool:
        return isinstance(value, bool) and tp is bool
    if tp is float and isinstance(value, int):
        return abs(value) <= 1e308  # an int float() can convert
    if tp is float:
        return isinstance(value, float) and math.isfinite(value)
    return isinstance(value, tp)


def default_model_path(suffix: str = ".onnx") -> Path:
    """The bundled default model (`tracker/models/<DEFAULT_MODEL>.onnx` or `.pt`)."""
    return MODELS_DIR / f"{DEFAULT_MODEL}{suffix}"


def bundled_models(suffix: str = ".onnx") -> list[Path]:
    """The bundled models' files of that kind, sorted by name (`--model NAME` loads one)."""
    return sorted(MODELS_DIR.glob(f"*{suffix}"), key=lambda p: p.stem)


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
    return info_from_metadata({p.key: p.value for p in m.metadata_props}, path)


def info_from_metadata(props: Mapping[str, str], path: str | Path) -> ModelInfo:
    """The `ModelInfo` in an ONNX model's metadata properties (as onnx or onnxruntime read
    them; onnxruntime's reader spares the 0.5 s import of onnx on the tracker's start-up)."""
    if METADATA_KEY not in props:
        raise ModelFileError(f"{path}: no '{METADATA_KEY}' metadata; export it with `engines export`")
    try:
        return ModelInfo.from_json(props[METADATA_KEY])
    except ModelFileError as e:
        raise ModelFileError(f"{path}: damaged '{METADATA_KEY}' metadata ({e})") from None


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
    except (ModelFileError, KeyError) as e:
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
    training checkpoint's config dicts (named after its run folder); ModelFileError (or
    KeyError, a missing config) when they are damaged."""
    if "model_info" in ck:
        if not isinstance(ck["model_info"], str):
            raise ModelFileError(f"'model_info' must be a JSON string, got "
                                 f"{type(ck['model_info']).__name__}")
        return ModelInfo.from_json(ck["model_info"]), ck.get("state_dict")
    return (ModelInfo(run_name, parse_fields(ModelConfig, ck["model_config"], "model_config"),
                      parse_fields(HeatmapCodec, ck["codec"], "codec")), ck.get("model"))


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
