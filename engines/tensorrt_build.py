"""TensorRT 10 engines from ONNX models: build once, cache on disk.

    path = build_engine("tracker/models/rt-m.onnx", max_batch=32)        # fp16, cached
    # the same from the shell: engines build tracker/models/rt-m.onnx --max-batch 32

An engine is specific to a model file, a GPU, a TensorRT version, a precision and a batch
range, so serialised engines are cached under a key of exactly those (`engine_key`), in
`default_cache_dir()` unless told otherwise, beside a timing cache that makes rebuilds fast;
a manifest (`<engine>.json`) records the fields. INT8 engines are calibrated on face crops
(`calibration_batches`, an entropy calibrator). `tracker.engines.tensorrt_backend` runs a
cached engine (`cached_engine` finds it); when there is none, it names the `build_command`.

TensorRT and pycuda are imported lazily, inside the functions that need them, so this module
imports anywhere; without them `build_engine` raises `BackendUnavailable` saying what to
install.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
from pathlib import Path

import numpy as np

from tracker.core.modelfile import INPUT_NAME, ModelInfo, read_onnx_info
from tracker.engines.backend import PRECISIONS, BackendUnavailable

WORKSPACE_BYTES = 1 << 30
CALIBRATION_BATCH = 8


def default_cache_dir() -> Path:
    """Where engines are cached: $TRACKER_ENGINE_CACHE, else $XDG_CACHE_HOME (or ~/.cache)
    /subpixel-tracker/engines."""
    if os.environ.get("TRACKER_ENGINE_CACHE"):
        return Path(os.environ["TRACKER_ENGINE_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "subpixel-tracker" / "engines"


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def precision_of(fp16: bool, int8: bool) -> str:
    """"int8" (with fp16 for the layers int8 cannot take), "fp16" or "fp32"."""
    return "int8" if int8 else ("fp16" if fp16 else "fp32")


def engine_fields(model_sha256: str, gpu_name: str, trt_version: str, precision: str,
                  max_batch: int, calibration_sha256: str | None = None) -> dict:
    """Everything that makes one engine differ from another (the calibration data too, for
    int8), checked; what `engine_key` hashes and an engine's manifest records."""
    if not re.fullmatch(r"[0-9a-f]{64}", model_sha256):
        raise ValueError(f"model_sha256 must be 64 hex digits, got {model_sha256!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}; expected one of {PRECISIONS}")
    if int(max_batch) < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    if (precision == "int8") != (calibration_sha256 is not None):
        raise ValueError("calibration_sha256 is given exactly when precision is 'int8'")
    fields = {"model": model_sha256, "gpu": gpu_name.strip(), "tensorrt": str(trt_version),
              "precision": precision, "max_batch": int(max_batch)}
    if calibration_sha256 is not None:
        fields["calibration"] = calibration_sha256
    return fields


def engine_key(model_sha256: str, gpu_name: str, trt_version: str, precision: str,
               max_batch: int, calibration_sha256: str | None = None) -> str:
    """Cache key of a serialised engine: 20 hex digits of the sha256 of its `engine_fields`."""
    fields = engine_fields(model_sha256, gpu_name, trt_version, precision, max_batch,
                           calibration_sha256)
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:20]


def engine_filename(model_stem: str, precision: str, max_batch: int, key: str) -> str:
    """`<stem>.<precision>.b<max_batch>.<key>.engine`, readable and unique per key."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", model_stem)
    return f"{stem}.{precision}.b{int(max_batch)}.{key}.engine"


def manifest_path(engine_path: Path) -> Path:
    """The JSON beside a cached engine that records its `engine_fields` (`<name>.json`)."""
    return engine_path.with_suffix(".json")


def write_manifest(engine_path: Path, fields: dict) -> None:
    manifest_path(engine_path).write_text(json.dumps(fields, sort_keys=True, indent=1) + "\n")


def cached_engine(onnx_path: str | Path, precision: str, max_batch: int, gpu: str,
                  trt_version: str, cache_dir: str | Path | None = None) -> Path | None:
    """The cached engine of an ONNX model for this GPU, TensorRT version, precision and batch
    range, or None; builds nothing.

    An fp32 or fp16 engine is found by its key. An int8 engine's key also holds its
    calibration data, which only its build saw: it is found by the manifest beside it (the
    newest, when several calibrations were built)."""
    onnx_path = Path(onnx_path)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    model_sha = file_sha256(onnx_path)
    if precision != "int8":
        key = engine_key(model_sha, gpu, trt_version, precision, max_batch)
        path = cache_dir / engine_filename(onnx_path.stem, precision, max_batch, key)
        return path if path.is_file() else None
    want = engine_fields(model_sha, gpu, trt_version, precision, max_batch, "0" * 64)
    del want["calibration"]
    found = []
    for path in cache_dir.glob(engine_filename(onnx_path.stem, precision, max_batch, "*")):
        try:
            fields = json.loads(manifest_path(path).read_text())
        except (OSError, ValueError):
            continue  # no manifest (or a damaged one): not known to fit
        if isinstance(fields, dict) and all(fields.get(k) == v for k, v in want.items()):
            found.append(path)
    return max(found, key=lambda p: p.stat().st_mtime, default=None)


def build_command(onnx_path: str | Path, precision: str, max_batch: int,
                  cache_dir: str | Path | None = None) -> str:
    """The `engines build` command line that builds the engine `cached_engine` looks for
    (FACES_DIR, for int8: a folder of face images to calibrate with)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}; expected one of {PRECISIONS}")
    args = ["engines", "build", str(onnx_path), "--max-batch", str(int(max_batch))]
    args += {"fp32": ["--no-fp16"], "fp16": ["--fp16"],
             "int8": ["--int8", "--calib", "FACES_DIR"]}[precision]
    if cache_dir is not None and Path(cache_dir) != default_cache_dir():
        args += ["--cache-dir", str(cache_dir)]
    return shlex.join(args)


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "gpu"


def import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError as e:
        raise BackendUnavailable(
            f"TensorRT is not installed ({e}); the tensorrt backend needs an NVIDIA GPU and "
            "`pip install 'subpixel-tracker[gpu]'` (tensorrt>=10, pycuda)") from None
    if int(trt.__version__.split(".")[0]) < 10:
        raise BackendUnavailable(f"TensorRT {trt.__version__} is too old: this backend needs TensorRT 10")
    return trt


def import_pycuda():
    try:
        import pycuda.autoprimaryctx  # noqa: F401  (the primary context, shared with TensorRT and torch)
        import pycuda.driver as cuda
    except ImportError as e:
        raise BackendUnavailable(
            f"pycuda is not installed ({e}); the tensorrt backend needs "
            "`pip install 'subpixel-tracker[gpu]'` (tensorrt>=10, pycuda)") from None
    except Exception as e:  # pycuda raises its own errors when there is no driver or device
        raise BackendUnavailable(f"no usable CUDA device for pycuda ({type(e).__name__}: {e})") from None
    return cuda


def gpu_name() -> str:
    """Name of CUDA device 0 (via pycuda, else torch)."""
    try:
        return import_pycuda().Device(0).name()
    except BackendUnavailable:
        import torch

        if not torch.cuda.is_available():
            raise BackendUnavailable("no CUDA device (neither pycuda nor torch sees one)") from None
        return torch.cuda.get_device_name(0)


def _make_calibrator(trt, cuda, batches: np.ndarray, cache_file: Path):
    """An IInt8EntropyCalibrator2 fed from (N, b, 3, H, W) float32 network inputs."""

    class Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.batches = batches
            self.index = 0
            self.device = cuda.mem_alloc(batches[0].nbytes)

        def get_batch_size(self):
            return int(self.batches.shape[1])

        def get_batch(self, names):
            if self.index >= len(self.batches):
                return None
            cuda.memcpy_htod(self.device, np.ascontiguousarray(self.batches[self.index]))
            self.index += 1
            return [int(self.device)]

        def read_calibration_cache(self):
            return cache_file.read_bytes() if cache_file.is_file() else None

        def write_calibration_cache(self, cache):
            cache_file.write_bytes(bytes(cache))

    return Calibrator()


def calibration_batches(crops: np.ndarray, info: ModelInfo,
                        batch: int = CALIBRATION_BATCH) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB face crops -> (N // batch, batch, 3, H, W) normalised inputs
    (the last partial batch is dropped; at least one full batch is needed)."""
    crops = np.asarray(crops)
    h, w = info.model.input_hw
    if crops.ndim != 4 or crops.shape[1:] != (h, w, 3) or crops.dtype != np.uint8:
        raise ValueError(f"calibration crops must be (N, {h}, {w}, 3) uint8 RGB, got "
                         f"{crops.shape} {crops.dtype}")
    n = len(crops) // batch
    if n == 0:
        raise ValueError(f"int8 calibration needs at least {batch} face crops, got {len(crops)}")
    x = info.normalise(crops[: n * batch])  # (n*b, 3, H, W)
    return x.reshape(n, batch, 3, h, w)


def build_engine(onnx_path: str | Path, max_batch: int, fp16: bool = True,
                 int8_calibration_crops: np.ndarray | None = None,
                 cache_dir: str | Path | None = None, opt_batch: int | None = None,
                 workspace_bytes: int = WORKSPACE_BYTES, verbose: bool = False) -> Path:
    """Serialised TensorRT engine for an ONNX model, built once and cached; returns its path.

    One optimisation profile covers batch 1..max_batch (tuned at `opt_batch`, default
    max_batch). fp16 turns on FP16 kernels; `int8_calibration_crops`, (N, H, W, 3) uint8 RGB
    face crops (N >= 8), turns on INT8 with an entropy calibrator (FP16 kept for the layers
    INT8 cannot take). The timing cache `timing-<gpu>-trt<version>.cache` lives in the same
    folder and is updated after each build.
    """
    onnx_path = Path(onnx_path)
    info = read_onnx_info(onnx_path)  # the file's problems first, then the machine's
    trt = import_tensorrt()
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    opt_batch = max_batch if opt_batch is None else int(opt_batch)
    if not 1 <= opt_batch <= max_batch:
        raise ValueError(f"opt_batch {opt_batch} outside 1..{max_batch}")
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    int8 = int8_calibration_crops is not None
    batches = calibration_batches(int8_calibration_crops, info) if int8 else None
    calib_sha = hashlib.sha256(batches.tobytes()).hexdigest() if int8 else None
    precision = precision_of(fp16, int8)
    gpu = gpu_name()
    key_args = (file_sha256(onnx_path), gpu, trt.__version__, precision, max_batch, calib_sha)
    path = cache_dir / engine_filename(onnx_path.stem, precision, max_batch, engine_key(*key_args))
    if path.is_file():
        return path

    logger = trt.Logger(trt.Logger.VERBOSE if verbose else trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"{onnx_path}: TensorRT cannot parse it: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    h, w = info.model.input_hw
    profile = builder.create_optimization_profile()
    profile.set_shape(INPUT_NAME, (1, 3, h, w), (opt_batch, 3, h, w), (max_batch, 3, h, w))
    config.add_optimization_profile(profile)
    if fp16 or int8:
        config.set_flag(trt.BuilderFlag.FP16)
    if int8:
        cuda = import_pycuda()
        config.set_flag(trt.BuilderFlag.INT8)
        b = batches.shape[1]
        calib_profile = builder.create_optimization_profile()
        calib_profile.set_shape(INPUT_NAME, (b, 3, h, w), (b, 3, h, w), (b, 3, h, w))
        config.set_calibration_profile(calib_profile)
        config.int8_calibrator = _make_calibrator(trt, cuda, batches,
                                                  path.with_suffix(".calibration"))
    timing_file = cache_dir / f"timing-{slug(gpu)}-trt{trt.__version__}.cache"
    timing = config.create_timing_cache(timing_file.read_bytes() if timing_file.is_file() else b"")
    config.set_timing_cache(timing, ignore_mismatch=False)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"{onnx_path}: TensorRT built no engine ({precision}, max batch "
                           f"{max_batch}); run `engines build --verbose` for the builder's log")
    tmp = path.with_suffix(".engine.tmp")
    tmp.write_bytes(bytes(serialized))
    write_manifest(path, engine_fields(*key_args))  # before the engine: never one without it
    tmp.replace(path)  # atomic: a half-written engine is never picked up from the cache
    timing_file.write_bytes(bytes(config.get_timing_cache().serialize()))
    return path
