"""A TensorRT 10 engine as a tracker backend: loads a cached engine, builds none unless asked.

    # once per model, GPU and TensorRT version (tracker.engines.tensorrt_build):
    #   engines build tracker/models/rt-m.onnx --max-batch 32
    backend = TensorRTBackend("tracker/models/rt-m.onnx", max_batch=32)
    heatmaps = backend(x)                      # (B, 3, H, W) float32 -> (B, K, h, w) float32
    xy, score = backend.decode_on_device(x)    # CUDA kernel on the engine's output buffer

TensorRT and pycuda are imported lazily, inside the functions that need them, so this module
imports anywhere; without them the constructor raises `BackendUnavailable` saying what to
install.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tracker.core.modelfile import INPUT_NAME, OUTPUT_NAME, ModelInfo, read_onnx_info
from tracker.engines import tensorrt_build as tb
from tracker.engines.backend import (
    BackendOptions,
    BackendUnavailable,
    check_input,
    choose_precision,
)


class EngineNotBuilt(BackendUnavailable):
    """No cached engine fits the model, GPU, TensorRT version, precision and batch range; the
    message gives the `engines build` command that builds one."""


class TensorRTBackend:
    """A cached TensorRT engine of an ONNX model as a tracker backend (see
    `tracker.engines.backend`).

    model_path: the .onnx the engine was built from (its metadata, and its hash in the cache
    key); max_batch: the largest batch, as built; precision: "fp16", "fp32" or "int8", as
    built; cache_dir: where `engines build` put it (default `default_cache_dir()`).

    The constructor loads (deserialises) the engine; when none is cached it raises
    EngineNotBuilt with the `engines build` command, unless `build_if_missing` asks it to
    build one here (minutes; fp16 and fp32 only, int8 needs calibration images). Device
    buffers for `max_batch` faces, pinned host buffers and one CUDA stream are made here, once;
    each call copies the input in, sets the batch's input shape, runs `execute_async_v3` and
    copies the heatmaps out (or, in `decode_on_device`, only the decoded points).
    """

    name = "tensorrt"
    model_suffix = ".onnx"
    precisions = ("fp16", "fp32", "int8")

    def __init__(self, model_path: str | Path, max_batch: int = 32, precision: str = "fp16",
                 cache_dir: str | Path | None = None, build_if_missing: bool = False):
        self.path = Path(model_path)
        if self.path.suffix != ".onnx":
            raise ValueError(f"{self.path}: the tensorrt backend runs engines built from an "
                             f".onnx model (it reads the model's metadata from it)")
        self.info: ModelInfo = read_onnx_info(self.path)
        self.precision = choose_precision(self.name, self.precisions, precision)
        self.max_batch = int(max_batch)
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        trt = tb.import_tensorrt()
        cuda = tb.import_pycuda()
        self.device = tb.gpu_name()
        self.engine_path = self._engine_file(trt.__version__, cache_dir, build_if_missing)
        self._cuda = cuda
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if self._engine is None:
            raise RuntimeError(f"{self.engine_path}: TensorRT cannot deserialise this engine "
                               f"(delete it and build it again)")
        io = {self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)}
        if io != {INPUT_NAME, OUTPUT_NAME} or \
                self._engine.get_tensor_mode(INPUT_NAME) != trt.TensorIOMode.INPUT:
            raise RuntimeError(f"{self.engine_path}: expected tensors {INPUT_NAME!r} -> "
                               f"{OUTPUT_NAME!r}, found {sorted(io)}")
        largest = self._engine.get_tensor_profile_shape(INPUT_NAME, 0)[2][0]  # (min, opt, max)
        if largest < self.max_batch:
            raise RuntimeError(f"{self.engine_path}: built for batches up to {largest}, "
                               f"not {self.max_batch}")
        self._out_dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(OUTPUT_NAME)))
        self._context = self._engine.create_execution_context()
        self._stream = cuda.Stream()
        h, w = self.info.model.input_hw
        k, (hh, hw) = self.info.model.n_points, self.info.model.heatmap_hw
        self._in_host = cuda.pagelocked_empty((self.max_batch, 3, h, w), np.float32)
        self._out_host = cuda.pagelocked_empty((self.max_batch, k, hh, hw), self._out_dtype)
        self._in_dev = cuda.mem_alloc(self._in_host.nbytes)
        self._out_dev = cuda.mem_alloc(self._out_host.nbytes)
        self._context.set_tensor_address(INPUT_NAME, int(self._in_dev))
        self._context.set_tensor_address(OUTPUT_NAME, int(self._out_dev))
        self._decoder = None

    def _engine_file(self, trt_version: str, cache_dir: str | Path | None,
                     build_if_missing: bool) -> Path:
        """The cached engine to load; built here only with `build_if_missing` (not int8)."""
        path = tb.cached_engine(self.path, self.precision, self.max_batch, self.device,
                                trt_version, cache_dir)
        if path is not None:
            return path
        if build_if_missing and self.precision != "int8":
            return tb.build_engine(self.path, self.max_batch, fp16=self.precision == "fp16",
                                   cache_dir=cache_dir)
        where = cache_dir if cache_dir is not None else tb.default_cache_dir()
        command = tb.build_command(self.path, self.precision, self.max_batch, cache_dir)
        calib = (", FACES_DIR a folder of face images (.pts beside them) or face crops"
                 if self.precision == "int8" else "")
        raise EngineNotBuilt(
            f"{self.path}: no TensorRT engine built for it in {where} ({self.precision}, batches "
            f"up to {self.max_batch}, {self.device}, TensorRT {trt_version}); build it once with "
            f"`{command}`{calib}")

    @classmethod
    def from_options(cls, path: Path, options: BackendOptions) -> TensorRTBackend:
        precision = choose_precision(cls.name, cls.precisions, options.precision)
        return cls(path, max_batch=max(options.batches), precision=precision,
                   build_if_missing=options.build_if_missing)

    @staticmethod
    def availability() -> str:
        return f"available (TensorRT {tb.import_tensorrt().__version__})"

    def _run(self, x: np.ndarray) -> int:
        """Input in, engine run (asynchronously, on the backend's stream); returns B."""
        x = check_input(x, self.info)
        b = len(x)
        if not 1 <= b <= self.max_batch:
            raise ValueError(f"batch of {b} faces; this engine takes 1..{self.max_batch} "
                             f"(build it with a larger max_batch)")
        self._in_host[:b] = x
        self._cuda.memcpy_htod_async(self._in_dev, self._in_host[:b], self._stream)
        self._context.set_input_shape(INPUT_NAME, tuple(x.shape))
        if not self._context.execute_async_v3(stream_handle=self._stream.handle):
            raise RuntimeError(f"{self.engine_path}: TensorRT execution failed (batch {b})")
        return b

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(B, 3, H, W) float32 -> (B, K, h, w) float32 heatmaps (a new array)."""
        b = self._run(x)
        out = self._out_host[:b]
        self._cuda.memcpy_dtoh_async(out, self._out_dev, self._stream)
        self._stream.synchronize()
        return out.astype(np.float32, copy=True)

    def decode_on_device(self, x: np.ndarray,
                         to_frame: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Run the engine and decode its heatmaps with the CUDA kernel where they lie.

        x: (B, 3, H, W) float32 network input; to_frame: optional (B, 2, 3) network-input ->
        frame transforms (the inverse crop transforms). Returns (B, K, 2) float32 points in
        network-input pixels (as `info.codec.decode`) or, with `to_frame`, frame pixels; and
        (B, K) float32 peak values. Only those (and the transforms) cross the bus.
        """
        from tracker.engines.cuda_decode import CudaDecoder, heatmap_to_frame

        codec = self.info.codec
        if codec.decoder != "local_soft_argmax":
            raise ValueError(f"{self.path}: the model decodes with {codec.decoder!r}; the CUDA "
                             f"kernel implements 'local_soft_argmax' only")
        if self._decoder is None:
            self._decoder = CudaDecoder("pycuda")
        b = self._run(x)
        m = np.broadcast_to(codec.to_input, (b, 2, 3)) if to_frame is None else to_frame
        transforms = heatmap_to_frame(codec, m) if to_frame is not None else m.astype(np.float32)
        k, (h, w) = self.info.model.n_points, self.info.model.heatmap_hw
        dtype = "float16" if self._out_dtype == np.float16 else "float32"
        return self._decoder.decode(int(self._out_dev), b, k, h, w, codec.window, codec.tau,
                                    transforms, dtype, self._stream)
