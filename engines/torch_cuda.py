"""The torch model on a CUDA GPU, as a tracker backend: fp16, channels-last, CUDA graphs.

    backend = TorchCudaBackend("tracker/models/rt-m.pt")
    heatmaps = backend(x)                      # (B, 3, H, W) float32 -> (B, K, h, w) float32
    hm = backend.heatmaps_device(x)            # (B, K, h, w) torch CUDA tensor, for the kernel
    xy, score = backend.decode_on_device(x)    # CUDA kernel, only points come back

A CUDA graph is captured for each batch size in `cuda_graph_batches`; a batch runs through the
graph of the smallest captured size that holds it (padded up; the padding rows are ignored),
and a batch larger than the largest is split into chunks of that size. With no graph sizes,
the network runs eagerly. Input and output buffers are allocated here, once.

torch's CUDA build is needed only to construct the backend; the module imports anywhere.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tracker.core.modelfile import ModelFileError, ModelInfo, load_torch
from tracker.engines.backend import BackendOptions, BackendUnavailable, check_input, choose_precision
from tracker.engines.registry import sibling


def _import_torch_cuda():
    import torch

    if not torch.cuda.is_available():
        raise BackendUnavailable(
            f"torch {torch.__version__} sees no CUDA device; the torch-cuda backend needs an "
            f"NVIDIA GPU and a CUDA build of torch (this one is "
            f"{'a CPU build' if torch.version.cuda is None else 'built for CUDA ' + torch.version.cuda})")
    return torch


class TorchCudaBackend:
    """`tracker.core.model.FAN` on the GPU (see `tracker.engines.backend` for the protocol).

    model_path: a shipped `.pt` or a training checkpoint (given a `.onnx`, the `.pt` beside
    it); fp16: half-precision weights and activations; channels_last: NHWC memory layout
    (faster convolutions on tensor cores); cuda_graph_batches: batch sizes to capture.
    """

    name = "torch-cuda"
    model_suffix = ".pt"
    precisions = ("fp16", "fp32")

    def __init__(self, model_path: str | Path, fp16: bool = True, channels_last: bool = True,
                 cuda_graph_batches: tuple[int, ...] = (1, 8, 32), device: str = "cuda"):
        self.path = sibling(Path(model_path), ".pt")
        if not self.path.is_file():
            raise ModelFileError(f"{self.path}: no such model file")
        torch = _import_torch_cuda()
        self._torch = torch
        self.device = torch.device(device)
        if self.device.type != "cuda":
            raise ValueError(f"TorchCudaBackend runs on a CUDA device, got {device!r}")
        net, self.info = load_torch(self.path, "cpu")
        self.info: ModelInfo
        self.fp16, self.channels_last = bool(fp16), bool(channels_last)
        self.dtype = torch.float16 if fp16 else torch.float32
        self._format = torch.channels_last if channels_last else torch.contiguous_format
        self._net = net.to(self.device, self.dtype).to(memory_format=self._format).eval()
        sizes = sorted({int(b) for b in cuda_graph_batches})
        if sizes and sizes[0] < 1:
            raise ValueError(f"cuda_graph_batches must be >= 1, got {cuda_graph_batches}")
        self.graph_batches = tuple(sizes)
        h, w = self.info.model.input_hw
        largest = sizes[-1] if sizes else 1
        self._pinned = torch.empty((largest, 3, h, w), dtype=torch.float32, pin_memory=True)
        self._copied = torch.cuda.Event()  # the last upload from `_pinned` has finished
        self._copied.record()
        self._graphs = {b: self._capture(b) for b in sizes}
        self._decoder = None

    @classmethod
    def from_options(cls, path: Path, options: BackendOptions) -> TorchCudaBackend:
        precision = choose_precision(cls.name, cls.precisions, options.precision)
        return cls(path, fp16=precision == "fp16", cuda_graph_batches=options.batches)

    @staticmethod
    def availability() -> str:
        torch = _import_torch_cuda()
        return f"available (torch {torch.__version__}, {torch.cuda.get_device_name(0)})"

    def _net_fn(self, x32):
        """(b, 3, H, W) float32 NCHW device input -> (b, K, h, w) contiguous heatmaps; the
        cast to the network's dtype and layout happens on the GPU (inside the graph)."""
        return self._net(x32.to(dtype=self.dtype, memory_format=self._format)).contiguous()

    def _capture(self, b: int):
        """(graph, static float32 input, static output) for batch size b."""
        torch = self._torch
        h, w = self.info.model.input_hw
        x = torch.zeros((b, 3, h, w), dtype=torch.float32, device=self.device)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side), torch.inference_mode():
            for _ in range(3):  # warm-up: cuDNN picks its algorithms before the capture
                self._net_fn(x)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(graph):
            y = self._net_fn(x)
        return graph, x, y

    def _upload(self, x: np.ndarray, dst) -> None:
        """(b, 3, H, W) float32 host input into float32 device tensor `dst`, through pinned
        memory (an asynchronous copy)."""
        torch = self._torch
        b = len(x)
        if b > len(self._pinned):
            dst.copy_(torch.from_numpy(x))
            return
        self._copied.synchronize()  # never overwrite pinned memory that a copy still reads
        self._pinned[:b].copy_(torch.from_numpy(x))
        dst.copy_(self._pinned[:b], non_blocking=True)
        self._copied.record()

    def _forward(self, x: np.ndarray):
        """Checked host input -> (B, K, h, w) contiguous device heatmaps in `self.dtype`; with
        graphs, a view of a graph's output buffer, valid until the next call."""
        torch = self._torch
        b = len(x)
        if b == 0 or not self._graphs:
            inp = torch.empty((b, *x.shape[1:]), dtype=torch.float32, device=self.device)
            self._upload(x, inp)
            with torch.inference_mode():
                return self._net_fn(inp)
        fits = [s for s in self.graph_batches if s >= b]
        if not fits:  # larger than every graph: chunks of the largest
            s = self.graph_batches[-1]
            return torch.cat([self._forward(x[i:i + s]).clone() for i in range(0, b, s)])
        graph, inp, out = self._graphs[fits[0]]
        self._upload(x, inp[:b])
        graph.replay()
        return out[:b]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(B, 3, H, W) float32 -> (B, K, h, w) float32 heatmaps (a new host array)."""
        x = check_input(x, self.info)
        return self._forward(x).float().cpu().numpy()

    def heatmaps_device(self, x: np.ndarray):
        """(B, 3, H, W) float32 -> (B, K, h, w) contiguous torch CUDA tensor of the network's
        dtype (float16 with fp16, else float32), a new tensor (the kernel reads these)."""
        x = check_input(x, self.info)
        return self._forward(x).clone()

    def decode_on_device(self, x: np.ndarray,
                         to_frame: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Run the network and decode its heatmaps with the CUDA kernel where they lie.

        x: (B, 3, H, W) float32 network input; to_frame: optional (B, 2, 3) network-input ->
        frame transforms (the inverse crop transforms). Returns (B, K, 2) float32 points in
        network-input pixels (as `info.codec.decode`) or, with `to_frame`, in frame pixels;
        and (B, K) float32 peak values.
        """
        from tracker.engines.cuda_decode import CudaDecoder, heatmap_to_frame

        codec = self.info.codec
        if codec.decoder != "local_soft_argmax":
            raise ValueError(f"{self.path}: the model decodes with {codec.decoder!r}; the CUDA "
                             f"kernel implements 'local_soft_argmax' only")
        x = check_input(x, self.info)
        b = len(x)
        if self._decoder is None:
            self._decoder = CudaDecoder()
        if to_frame is None:
            transforms = np.broadcast_to(codec.to_input, (b, 2, 3)).astype(np.float32)
        else:
            transforms = heatmap_to_frame(codec, to_frame)
        hm = self._forward(x)
        return self._decoder.decode(hm, window=codec.window, tau=codec.tau, transforms=transforms)
