"""Throughput of the inference backends and of the CUDA decode kernel.

For each backend (loaded by name through `tracker.engines.registry`), precision and batch
size: the median wall time of a backend call (host input in, host heatmaps out) over `iters`
calls after `warmup` calls, as faces per second and milliseconds per face; on a GPU also the
same with decoding on the device (`decode_on_device`, host input in, host points out) and the
kernel alone in microseconds (CUDA events around `iters` launches). A TensorRT engine missing
from the cache is built before its run. Results go to `docs/results/bench_engines_<device>.json`.
"""
from __future__ import annotations

import json
import os
import platform
import re
import statistics
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from tracker.engines.backend import BackendOptions, BackendUnavailable
from tracker.engines.registry import BACKENDS, backend_class, load_backend

RESULTS_DIR = Path("docs") / "results"  # relative to the working directory (the repository root)


@dataclass(frozen=True)
class BenchConfig:
    model: Path  # .onnx (its .pt beside it for the torch backends) or .pt
    backends: tuple[str, ...] = ("onnxruntime",)
    batches: tuple[int, ...] = (1, 8, 32)
    precisions: tuple[str, ...] = ("fp32", "fp16")
    iters: int = 20
    warmup: int = 3
    out_dir: Path = RESULTS_DIR

    def __post_init__(self) -> None:
        bad = [b for b in self.backends if b not in BACKENDS]
        if bad:
            raise ValueError(f"unknown backend(s) {bad}; expected some of {list(BACKENDS)}")
        if not self.batches or min(self.batches) < 1:
            raise ValueError(f"batches must be >= 1, got {self.batches}")
        bad = [p for p in self.precisions if p not in ("fp32", "fp16")]
        if bad:
            raise ValueError(f"unknown precision(s) {bad}; expected fp32 and/or fp16")
        if self.iters < 1 or self.warmup < 0:
            raise ValueError(f"iters must be >= 1 and warmup >= 0, got {self.iters}, {self.warmup}")


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "unknown"


def median_seconds(fn, iters: int, warmup: int) -> float:
    """Median wall time of `fn()` (which must finish its GPU work before returning)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def throughput(seconds: float, batch: int) -> dict:
    return {"batch": batch, "ms_per_batch": round(seconds * 1e3, 4),
            "ms_per_face": round(seconds * 1e3 / batch, 4), "faces_per_s": round(batch / seconds, 1)}


def kernel_microseconds(decoder, b: int, k: int, h: int, w: int, window: int, tau: float,
                        half: bool = False, iters: int = 200, seed: int = 0) -> float:
    """Mean GPU time of one kernel launch on (b, k, h, w) random device heatmaps, by CUDA
    events around `iters` back-to-back launches."""
    import torch

    g = torch.Generator(device="cuda").manual_seed(seed)
    hm = torch.rand((b, k, h, w), generator=g, device="cuda")
    hm = hm.half() if half else hm
    for _ in range(10):
        decoder.launch(hm, window=window, tau=tau)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    if hasattr(torch.cuda, "_sleep"):  # hold the stream while Python enqueues every launch,
        torch.cuda._sleep(100_000_000)  # so that launch overhead does not count as kernel time
    start.record()
    for _ in range(iters):
        decoder.launch(hm, window=window, tau=tau)
    end.record()
    end.synchronize()
    return start.elapsed_time(end) * 1e3 / iters


def device_description() -> dict:
    """The machine the numbers come from."""
    d = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
         "cpu_count": os.cpu_count()}
    try:
        import torch

        d["torch"] = torch.__version__
        if torch.cuda.is_available():
            p = torch.cuda.get_device_properties(0)
            d.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / 2**30, 1),
                     compute_capability=f"{p.major}.{p.minor}", cuda=torch.version.cuda,
                     cudnn=torch.backends.cudnn.version(),
                     tf32_convolutions=bool(torch.backends.cudnn.allow_tf32))
    except ImportError:
        pass
    return d


def precisions_to_run(name: str, asked: tuple[str, ...]) -> tuple[str, ...]:
    """The precisions of `asked` that backend `name` runs; its default when it runs none of
    them (the CPU backends run fp32 only)."""
    supported = backend_class(name).precisions
    return tuple(p for p in asked if p in supported) or supported[:1]


def run(config: BenchConfig, log=print) -> dict:
    """Benchmark every (backend, precision, batch); write and return the results."""
    device = device_description()
    results = {"device": device, "model": str(config.model), "iters": config.iters,
               "warmup": config.warmup, "runs": []}
    rng = np.random.default_rng(0)
    on_gpu = False  # a backend that decodes on the device ran: time the kernel too
    for name in config.backends:
        try:
            precisions = precisions_to_run(name, config.precisions)
        except BackendUnavailable as e:
            log(f"{name}: skipped ({e})")
            results["runs"].append({"backend": name, "skipped": str(e)})
            continue
        for precision in precisions:
            # a TensorRT engine not yet in the cache is built first (and timed as loaded)
            options = BackendOptions(precision=precision, batches=config.batches,
                                     build_if_missing=True)
            try:
                backend = load_backend(name, config.model, options=options)
            except (ImportError, RuntimeError, ValueError, OSError) as e:
                log(f"{name} {precision}: skipped ({e})")
                results["runs"].append({"backend": name, "precision": precision,
                                        "skipped": str(e)})
                continue
            on_gpu = on_gpu or hasattr(backend, "decode_on_device")
            results["runs"].append(bench_backend(backend, name, precision, config, rng, log))
            backend = None  # free its GPU memory before the next one
    if "gpu" in device and on_gpu:
        results["kernel"] = kernel_table(config, log)
    config.out_dir.mkdir(parents=True, exist_ok=True)
    out = config.out_dir / f"bench_engines_{slug(device.get('gpu', 'cpu'))}.json"
    out.write_text(json.dumps(results, indent=1))
    results["written_to"] = str(out)
    log(f"wrote {out}")
    return results


def bench_backend(backend, name: str, precision: str, config: BenchConfig,
                  rng: np.random.Generator, log=print) -> dict:
    """Rows of throughput at each batch size for one constructed backend."""
    info = backend.info
    h, w = info.model.input_hw
    result = {"backend": name, "precision": precision, "model_name": info.name,
              "input_hw": list(info.model.input_hw), "rows": []}
    for b in config.batches:
        x = rng.standard_normal((b, 3, h, w)).astype(np.float32)
        row = throughput(median_seconds(partial(backend, x), config.iters, config.warmup), b)
        if hasattr(backend, "decode_on_device"):
            s = median_seconds(partial(backend.decode_on_device, x), config.iters, config.warmup)
            row["decode_on_device"] = throughput(s, b)
        result["rows"].append(row)
        log(f"{name:12s} {precision} batch {b:3d}: {row['faces_per_s']:10.1f} faces/s "
            f"{row['ms_per_face']:8.3f} ms/face"
            + (f" | with GPU decode {row['decode_on_device']['faces_per_s']:10.1f} faces/s"
               if "decode_on_device" in row else ""))
    return result


def kernel_table(config: BenchConfig, log=print) -> list[dict]:
    """Kernel-only microseconds for K=68 at each batch size, 32x32 and 64x64 maps."""
    from tracker.engines.cuda_decode import CudaDecoder

    try:
        decoder = CudaDecoder()
    except RuntimeError as e:
        log(f"kernel timing skipped ({e})")
        return [{"skipped": str(e)}]
    rows = []
    for hw in (32, 64):
        for b in config.batches:
            for half in (False, True):
                us = kernel_microseconds(decoder, b, 68, hw, hw, 5, 10.0, half)
                rows.append({"loader": decoder.loader, "batch": b, "k": 68, "heatmap_hw": [hw, hw],
                             "dtype": "float16" if half else "float32", "microseconds": round(us, 2)})
                log(f"kernel ({decoder.loader}) B={b:3d} K=68 {hw}x{hw} "
                    f"{'fp16' if half else 'fp32'}: {us:8.2f} us")
    return rows
