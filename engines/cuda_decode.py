"""Heatmap decoding on the GPU: the local soft-argmax kernel, loaded and launched from Python.

The kernel (`engines/kernels/local_soft_argmax.cu`) reads (B, K, h, w) heatmaps where they
already are, in device memory (a TensorRT output buffer or a torch CUDA tensor), and only the
(B, K, 2) points and (B, K) peaks travel back to the host. Its numpy mirror is
`engines.kernel_reference.local_soft_argmax_ref`.

Loaders, tried in this order by `loader="auto"`:
- "pycuda": `pycuda.compiler.SourceModule` (nvcc) in the device's primary context, the one
  that torch, CuPy and TensorRT use, so device pointers pass freely between them;
- "cupy": `cupy.RawModule` (NVRTC), for machines with torch + CuPy but no pycuda.

Everything here imports lazily: this module imports on a machine without CUDA.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tracker.core.codec import HeatmapCodec
from tracker.core.geometry import compose

KERNEL_PATH = Path(__file__).resolve().parent / "kernels" / "local_soft_argmax.cu"
BLOCK = 128  # threads per block; the kernel's LSA_BLOCK
MAX_WINDOW = 31
ENTRY_POINTS = {"float32": "local_soft_argmax_f32", "float16": "local_soft_argmax_f16"}
LOADERS = ("pycuda", "cupy")


class CudaUnavailableError(RuntimeError):
    """No way to run the kernel here: no CUDA device, or neither pycuda nor CuPy."""


def kernel_source() -> str:
    """The CUDA source of the kernel."""
    return KERNEL_PATH.read_text()


def heatmap_to_frame(codec: HeatmapCodec, to_frame: np.ndarray) -> np.ndarray:
    """(B, 2, 3) float32 heatmap -> frame transforms for the kernel, from (B, 2, 3) network
    input -> frame transforms (the inverse of each face's crop transform)."""
    to_frame = np.asarray(to_frame, np.float64)
    if to_frame.ndim != 3 or to_frame.shape[1:] != (2, 3):
        raise ValueError(f"to_frame: expected (B, 2, 3) transforms, got shape {to_frame.shape}")
    return compose(to_frame, codec.to_input[None]).astype(np.float32)


class _Pycuda:
    """Kernel, buffers and copies through pycuda, in the primary context."""

    name = "pycuda"

    def __init__(self) -> None:
        import pycuda.autoprimaryctx  # noqa: F401  (the context torch and TensorRT use)
        import pycuda.driver as cuda
        from pycuda.compiler import SourceModule

        self.cuda = cuda
        module = SourceModule(kernel_source(), no_extern_c=True)
        self.compiler = "nvcc"
        self.functions = {}
        for dtype, name in ENTRY_POINTS.items():
            f = module.get_function(name)
            f.prepare("PPPPiiiiif")
            self.functions[dtype] = f
        self._module = module

    def alloc(self, nbytes: int):
        return self.cuda.mem_alloc(max(int(nbytes), 1))

    def pinned(self, shape: tuple[int, ...], dtype) -> np.ndarray:
        return self.cuda.pagelocked_empty(shape, dtype)

    def launch(self, dtype: str, n_maps: int, args: tuple, stream) -> None:
        ptrs = [np.uintp(_address(a)) for a in args[:4]]
        self.functions[dtype].prepared_async_call((n_maps, 1), (BLOCK, 1, 1), stream, *ptrs,
                                                  *args[4:])

    def htod(self, dst, src: np.ndarray, stream) -> None:
        self.cuda.memcpy_htod_async(int(dst), src, stream)

    def dtoh(self, dst: np.ndarray, src, stream) -> None:
        self.cuda.memcpy_dtoh_async(dst, int(src), stream)

    def synchronize(self, stream) -> None:
        if stream is None:
            self.cuda.Context.synchronize()
        else:
            stream.synchronize()

    def stream_for_torch(self):
        """pycuda cannot adopt torch's stream: the caller synchronises torch first."""
        return None


class _Cupy:
    """Kernel, buffers and copies through CuPy (NVRTC)."""

    name = "cupy"

    def __init__(self) -> None:
        import cupy as cp

        self.cp = cp
        try:  # NVRTC, from the source
            module = cp.RawModule(code=kernel_source(), options=("--std=c++14",))
            self.functions = {d: module.get_function(n) for d, n in ENTRY_POINTS.items()}
            self.compiler = "nvrtc"
        except Exception as e:  # no usable NVRTC: a cubin from nvcc, if there is one
            module = cp.RawModule(path=str(_nvcc_cubin(cp.cuda.Device().compute_capability, e)))
            self.functions = {d: module.get_function(n) for d, n in ENTRY_POINTS.items()}
            self.compiler = "nvcc"
        self._module = module

    def alloc(self, nbytes: int):
        return self.cp.cuda.alloc(max(int(nbytes), 1))  # a MemoryPointer; int(.ptr) is the address

    def pinned(self, shape: tuple[int, ...], dtype) -> np.ndarray:
        import cupyx

        return cupyx.empty_pinned(shape, dtype)

    def _stream(self, stream):
        if stream is None:
            return self.cp.cuda.Stream.null
        if isinstance(stream, int):
            return self.cp.cuda.ExternalStream(stream)
        return stream

    def launch(self, dtype: str, n_maps: int, args: tuple, stream) -> None:
        ptrs = [np.uint64(_address(a)) for a in args[:4]]
        with self._stream(stream):
            self.functions[dtype]((n_maps,), (BLOCK,), (*ptrs, *args[4:]))

    def htod(self, dst, src: np.ndarray, stream) -> None:
        self.cp.cuda.runtime.memcpyAsync(_address(dst), src.ctypes.data, src.nbytes,
                                         self.cp.cuda.runtime.memcpyHostToDevice,
                                         self._stream(stream).ptr)

    def dtoh(self, dst: np.ndarray, src, stream) -> None:
        self.cp.cuda.runtime.memcpyAsync(dst.ctypes.data, _address(src), dst.nbytes,
                                         self.cp.cuda.runtime.memcpyDeviceToHost,
                                         self._stream(stream).ptr)

    def synchronize(self, stream) -> None:
        self._stream(stream).synchronize()

    def stream_for_torch(self):
        import torch

        return int(torch.cuda.current_stream().cuda_stream)


def _nvcc_cubin(compute_capability: str, why: Exception) -> Path:
    """The kernel compiled by nvcc for sm_<compute_capability>, in a temporary folder."""
    import shutil
    import subprocess
    import tempfile

    nvcc = shutil.which("nvcc")
    if nvcc is None:
        raise CudaUnavailableError(f"CuPy cannot compile {KERNEL_PATH.name} ({why}) and there is "
                                   f"no nvcc to fall back on") from None
    out = Path(tempfile.mkdtemp(prefix="lsa-")) / "local_soft_argmax.cubin"
    r = subprocess.run([nvcc, "-cubin", f"-arch=sm_{compute_capability}", "-o", str(out),
                        str(KERNEL_PATH)], capture_output=True, text=True)
    if r.returncode != 0:
        raise CudaUnavailableError(f"nvcc cannot compile {KERNEL_PATH}: {r.stderr.strip()}")
    return out


def _address(buf) -> int:
    """Device address of a pycuda allocation, a CuPy MemoryPointer or a plain int."""
    if hasattr(buf, "ptr"):
        return int(buf.ptr)
    return int(buf)


def _load(loader: str):
    if loader not in ("auto", *LOADERS):
        raise ValueError(f"unknown kernel loader {loader!r}; expected 'auto' or one of {LOADERS}")
    tried = []
    for name in (LOADERS if loader == "auto" else (loader,)):
        try:
            return _Pycuda() if name == "pycuda" else _Cupy()
        except ImportError as e:
            tried.append(f"{name}: not installed ({e})")
    raise CudaUnavailableError(
        f"cannot load {KERNEL_PATH.name}: " + "; ".join(tried)
        + ". Install pycuda (pip install 'subpixel-tracker[gpu]') or CuPy for your CUDA version.")


class CudaDecoder:
    """The local soft-argmax kernel with its output buffers, allocated once and grown on need.

    `decode` takes heatmaps in device memory, as a raw address or a torch CUDA tensor, and
    returns host arrays; nothing but the (B, K, 2) points and (B, K) peaks (and the (B, 2, 3)
    transforms, on the way in) crosses the bus.
    """

    def __init__(self, loader: str = "auto"):
        self.runtime = _load(loader)
        self.loader = f"{self.runtime.name} ({self.runtime.compiler})"
        self._capacity = 0  # maps
        self._faces = 0
        self._xy = self._peak = self._tr = None
        self._h_xy = self._h_peak = self._h_tr = None
        self._stream = None
        self._uploading = False  # a transforms upload from pinned memory may be in flight

    def _reserve(self, n_maps: int, n_faces: int) -> None:
        rt = self.runtime
        if n_maps > self._capacity:
            self._capacity = max(n_maps, 2 * self._capacity)
            self._xy, self._peak = rt.alloc(8 * self._capacity), rt.alloc(4 * self._capacity)
            self._h_xy = rt.pinned((self._capacity, 2), np.float32)
            self._h_peak = rt.pinned((self._capacity,), np.float32)
        if n_faces > self._faces:
            self._faces = max(n_faces, 2 * self._faces)
            self._tr = rt.alloc(24 * self._faces)
            self._h_tr = rt.pinned((self._faces, 2, 3), np.float32)

    def decode(self, heatmaps, b: int | None = None, k: int | None = None, h: int | None = None,
               w: int | None = None, window: int = 5, tau: float = 10.0,
               transforms: np.ndarray | None = None, dtype: str = "float32",
               stream=None) -> tuple[np.ndarray, np.ndarray]:
        """Decode (B, K, h, w) heatmaps in device memory.

        heatmaps: a torch CUDA tensor (float32 or float16; its shape and dtype are used) or the
            device address (int) of a contiguous (B, K, h, w) array of `dtype`, with b, k, h, w
            given.
        transforms: optional (B, 2, 3) heatmap -> frame transforms (see `heatmap_to_frame`).
        stream: the loader's stream (a pycuda Stream, a CuPy stream or a raw cudaStream_t int)
            on which the heatmaps were written; None for the default stream. For a torch
            tensor, torch's current stream is used.
        Returns (B, K, 2) float32 points (heatmap pixels, or frame pixels with `transforms`)
        and (B, K) float32 peak values, as new host arrays.
        """
        b, k = self.launch(heatmaps, b, k, h, w, window, tau, transforms, dtype, stream)
        n = b * k
        if n == 0:
            return np.zeros((b, k, 2), np.float32), np.zeros((b, k), np.float32)
        rt, stream = self.runtime, self._stream
        rt.dtoh(self._h_xy[:n], self._xy, stream)
        rt.dtoh(self._h_peak[:n], self._peak, stream)
        rt.synchronize(stream)
        self._uploading = False
        return self._h_xy[:n].reshape(b, k, 2).copy(), self._h_peak[:n].reshape(b, k).copy()

    def launch(self, heatmaps, b: int | None = None, k: int | None = None, h: int | None = None,
               w: int | None = None, window: int = 5, tau: float = 10.0,
               transforms: np.ndarray | None = None, dtype: str = "float32",
               stream=None) -> tuple[int, int]:
        """Enqueue the kernel only (arguments as `decode`); its outputs stay in the decoder's
        device buffers. Returns (B, K). For timing the kernel alone."""
        address, (b, k, h, w), dtype, stream = self._resolve(heatmaps, b, k, h, w, dtype, stream)
        self._stream = stream
        if window < 1 or window % 2 == 0 or window > MAX_WINDOW:
            raise ValueError(f"window must be an odd number in [1, {MAX_WINDOW}], got {window}")
        n = b * k
        if n == 0:
            return b, k
        self._reserve(n, b)
        rt = self.runtime
        tr_address = 0
        if transforms is not None:
            tr = np.asarray(transforms, np.float32)
            if tr.shape != (b, 2, 3):
                raise ValueError(f"transforms: expected shape {(b, 2, 3)}, got {tr.shape}")
            if self._uploading:  # never overwrite pinned memory that a copy may still read
                rt.synchronize(stream)
            self._h_tr[:b] = tr
            rt.htod(self._tr, self._h_tr[:b], stream)
            self._uploading = True
            tr_address = _address(self._tr)
        rt.launch(dtype, n, (address, tr_address, _address(self._xy), _address(self._peak),
                             np.int32(n), np.int32(k), np.int32(h), np.int32(w),
                             np.int32(window), np.float32(tau)), stream)
        return b, k

    def _resolve(self, heatmaps, b, k, h, w, dtype, stream):
        if isinstance(heatmaps, (int, np.integer)):
            if None in (b, k, h, w):
                raise ValueError("decode: a raw device address needs b, k, h and w")
            if dtype not in ENTRY_POINTS:
                raise ValueError(f"decode: dtype {dtype!r}; expected one of {tuple(ENTRY_POINTS)}")
            if min(b, k, h, w) < 0 or h * w == 0:
                raise ValueError(f"decode: bad heatmap shape {(b, k, h, w)}")
            return int(heatmaps), (int(b), int(k), int(h), int(w)), dtype, stream
        import torch

        if not isinstance(heatmaps, torch.Tensor) or not heatmaps.is_cuda:
            raise TypeError(f"decode: expected a torch CUDA tensor or a device address, got "
                            f"{type(heatmaps).__name__}"
                            + (" on the CPU (use tracker.core.codec for host arrays)"
                               if isinstance(heatmaps, torch.Tensor) else ""))
        if heatmaps.ndim != 4:
            raise ValueError(f"decode: expected (B, K, h, w) heatmaps, got shape {tuple(heatmaps.shape)}")
        names = {torch.float32: "float32", torch.float16: "float16"}
        if heatmaps.dtype not in names:
            raise ValueError(f"decode: heatmaps of dtype {heatmaps.dtype}; expected float32 or float16")
        if not heatmaps.is_contiguous():
            raise ValueError("decode: heatmaps must be contiguous (B, K, h, w); call .contiguous()")
        torch_stream = self.runtime.stream_for_torch()
        if torch_stream is None:  # a loader that cannot run on torch's stream: wait for it
            torch.cuda.current_stream().synchronize()
        return (heatmaps.data_ptr(), tuple(heatmaps.shape), names[heatmaps.dtype],
                torch_stream if stream is None else stream)


_default: CudaDecoder | None = None


def decode(heatmaps, b: int | None = None, k: int | None = None, h: int | None = None,
           w: int | None = None, window: int = 5, tau: float = 10.0,
           transforms: np.ndarray | None = None, dtype: str = "float32",
           stream=None) -> tuple[np.ndarray, np.ndarray]:
    """`CudaDecoder.decode` with a decoder shared by the process (loaded on first use)."""
    global _default
    if _default is None:
        _default = CudaDecoder()
    return _default.decode(heatmaps, b, k, h, w, window, tau, transforms, dtype, stream)
