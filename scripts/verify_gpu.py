"""Check and measure the GPU path in one go, on a machine with a CUDA GPU.

    python scripts/verify_gpu.py OUT_DIR [--model tracker/models/rt-sep-kd.pt] [--skip-pytest]

Needs torch with CUDA and one kernel loader (pycuda, or CuPy: NVRTC, else nvcc); TensorRT and
pycuda are optional (their checks are recorded as skipped when absent). Writes
OUT_DIR/verify_gpu.json (and OUT_DIR/bench_engines_<gpu>.json), prints a summary and exits 1
if any check failed. Every section runs even when an earlier one fails.

What it checks and measures:
- nvcc: the kernel compiles to a cubin for this GPU's architecture;
- kernel: loads with every loader present; on random maps (32x32, 64x64, 16x12), real-looking
  maps with points on the borders, tie-ridden maps, several windows and temperatures, float16
  maps, frame transforms and the network's own heatmaps: max |kernel - numpy mirror| and
  max |kernel - codec| in heatmap pixels (must be <= 1e-4), peaks equal;
- kernel time: microseconds per launch (CUDA events) for B = 1, 8, 32, K = 68, 32x32 and 64x64,
  float32 and float16;
- torch-cuda: faces/s and ms/face at batch 1, 8, 32 in fp32 and fp16 (CUDA graphs, host in ->
  host heatmaps out; and host in -> host points out with the kernel), and its landmarks against
  the CPU torch backend on real face crops (median / max distance in input pixels);
- tensorrt (when TensorRT + pycuda are installed): engine build, the backend loading it, parity
  and the same rates;
- pytest tests/engines (GPU tests included).
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from functools import partial
from importlib import metadata
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TOL_HM_PX = 1e-4  # kernel vs reference / codec, heatmap pixels
BATCHES = (1, 8, 32)


class Report:
    """Sections of results; a section that raises is recorded as failed, with its traceback."""

    def __init__(self):
        self.data: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "checks": {}}
        self.failed: list[str] = []

    def section(self, name: str, fn, *args):
        t0 = time.perf_counter()
        print(f"== {name}", flush=True)
        try:
            out = fn(*args)
            self.data[name] = out
        except Exception as e:  # record and go on: one broken part must not hide the others
            self.data[name] = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
            self.failed.append(name)
            print(f"   FAILED: {type(e).__name__}: {e}", flush=True)
            out = None
        self.data.setdefault("seconds", {})[name] = round(time.perf_counter() - t0, 2)
        return out

    def check(self, name: str, ok: bool, detail) -> None:
        self.data["checks"][name] = {"ok": bool(ok), "detail": detail}
        if not ok:
            self.failed.append(name)
        print(f"   [{'ok' if ok else 'FAIL'}] {name}: {detail}", flush=True)


def environment() -> dict:
    import torch

    d = {"python": sys.version.split()[0], "platform": platform.platform(), "torch": torch.__version__,
         "torch_cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
         "nvcc": shutil.which("nvcc")}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        d.update(gpu=p.name, compute_capability=f"{p.major}.{p.minor}",
                 gpu_memory_gib=round(p.total_memory / 2**30, 1), cudnn=torch.backends.cudnn.version(),
                 tf32_convolutions=bool(torch.backends.cudnn.allow_tf32))
    installed = metadata.packages_distributions()  # import name -> distributions
    for m in ("cupy", "pycuda", "tensorrt", "onnxruntime"):
        dists = installed.get(m)
        d[m] = f"{dists[0]} {metadata.version(dists[0])}" if dists else "absent"
    if d["nvcc"]:
        d["nvcc_version"] = subprocess.run(["nvcc", "--version"], capture_output=True,
                                           text=True).stdout.strip().splitlines()[-1]
    return d


def nvcc_compile(rep: Report, arch: str) -> dict:
    from tracker.engines.cuda_decode import KERNEL_PATH

    if not shutil.which("nvcc"):
        return {"skipped": "no nvcc"}
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "k.cubin"
        r = subprocess.run(["nvcc", "-cubin", f"-arch=sm_{arch}", "-Werror", "all-warnings",
                            "-Xptxas", "-v", "-o", str(out), str(KERNEL_PATH)],
                           capture_output=True, text=True)
        rep.check("nvcc_compiles_kernel", r.returncode == 0, f"sm_{arch}, rc {r.returncode}")
        return {"arch": f"sm_{arch}", "rc": r.returncode, "ptxas": r.stderr.strip()[-2000:]}


def load_model(model: Path | None):
    """(path of .pt, path of .onnx or None, info, trained?) for the model to use."""
    from tracker.core.codec import HeatmapCodec
    from tracker.core.model import FAN
    from tracker.core.model_config import PRESETS
    from tracker.core.modelfile import ModelInfo, default_model_path
    from tracker.engines.export import export_onnx, save_shipped

    pt = model if model is not None else default_model_path(".pt")
    if pt.is_file():
        onnx_path = pt.with_suffix(".onnx")
        return pt, (onnx_path if onnx_path.is_file() else None), True
    import torch

    torch.manual_seed(0)
    mc = PRESETS["rt-m"]
    net = FAN(mc).eval()
    info = ModelInfo("rt-m-untrained", mc, HeatmapCodec(mc.input_hw, mc.heatmap_hw))
    d = Path(tempfile.mkdtemp(prefix="verify-gpu-"))
    export_onnx(net, info, d / "rt-m.onnx")
    save_shipped(net, info, d / "rt-m.pt", half=False)
    return d / "rt-m.pt", d / "rt-m.onnx", False


def face_inputs(info, n: int) -> np.ndarray:
    """(n, 3, H, W) network input: the fixture stills' faces cropped as in training (random
    input where OpenCV is missing, said in the output)."""
    try:
        import cv2  # noqa: F401
    except ImportError:
        print("   OpenCV is missing: random network input instead of face crops")
        return np.random.default_rng(0).standard_normal((n, 3, *info.model.input_hw)).astype(np.float32)
    from tracker.core.datasets import read_image
    from tracker.core.geometry import landmarks_crop_transform, warp
    from tracker.core.pts import read_pts

    files = sorted((ROOT / "tests" / "fixtures" / "stills").glob("*.png"))
    crops = []
    for i in range(n):
        p = files[i % len(files)]
        m = landmarks_crop_transform(read_pts(p.with_suffix(".pts")), info.model.input_hw, info.crop_ratio)
        crop = warp(read_image(p), m, info.model.input_hw)
        crops.append(crop[:, ::-1] if (i // len(files)) % 2 else crop)  # mirrored on odd rounds
    return info.normalise(np.ascontiguousarray(np.stack(crops)))


def _has_cv2() -> bool:
    import importlib.util

    return importlib.util.find_spec("cv2") is not None


def kernel_cases(net_heatmaps: np.ndarray | None) -> list[tuple[str, np.ndarray, int, float, bool]]:
    """(name, heatmaps, window, tau, with transforms) for the kernel checks."""
    from tests.engines.heatmaps import real_heatmaps
    from tracker.core.codec import HeatmapCodec

    g = np.random.default_rng(0)
    cases = [(f"random_{s}", (g.standard_normal(s) * 0.3).astype(np.float32), 5, 10.0, False)
             for s in [(32, 68, 32, 32), (8, 68, 64, 64), (3, 5, 16, 12)]]
    for hw in [(32, 32), (64, 64), (16, 12)]:
        codec = HeatmapCodec((hw[0] * 4, hw[1] * 4), hw)
        cases.append((f"real_borders_{hw[0]}x{hw[1]}", real_heatmaps(codec), 5, 10.0, hw == (32, 32)))
    ties = np.zeros((2, 4, 8, 8), np.float32)
    ties[0, 1, 2, 5] = ties[0, 1, 6, 1] = 1.0
    ties[0, 2, 7, 7] = ties[0, 2, 7, 6] = 2.0
    ties[1] = np.round(g.random((4, 8, 8)) * 3) / 3
    for window, tau in [(1, 10.0), (3, 1.0), (5, 10.0), (9, 30.0)]:
        cases.append((f"ties_w{window}_tau{tau:g}", ties, window, tau, False))
    hm16 = real_heatmaps(HeatmapCodec((128, 128), (32, 32)), seed=3).astype(np.float16)
    cases.append(("real_float16", hm16, 5, 10.0, False))
    if net_heatmaps is not None:
        cases.append(("network_heatmaps", net_heatmaps, 5, 10.0, True))
    return cases


def kernel_checks(rep: Report, net_heatmaps: np.ndarray | None) -> dict:
    import torch

    from tracker.core.codec import decode_np
    from tracker.core.geometry import similarity
    from tracker.engines.cuda_decode import LOADERS, CudaDecoder
    from tracker.engines.kernel_reference import local_soft_argmax_ref

    out = {}
    for loader in LOADERS:
        try:
            dec = CudaDecoder(loader)
        except Exception as e:
            out[loader] = {"skipped": f"{type(e).__name__}: {e}"}
            print(f"   loader {loader}: unavailable ({e})")
            continue
        rows = []
        for name, hm, window, tau, with_tr in kernel_cases(net_heatmaps):
            b = len(hm)
            tr = None
            if with_tr:  # heatmap -> frame: scaled, rotated, moved into a 1280x720 frame
                tr = np.stack([similarity(np.array([15.5, 15.5]), np.array([300.0 + 20 * i, 360.0]),
                                          4.0 + 0.1 * i, 3.0 * i) for i in range(b)]).astype(np.float32)
            xy, peak = dec.decode(torch.from_numpy(hm).cuda(), window=window, tau=tau, transforms=tr)
            ref_xy, ref_peak = local_soft_argmax_ref(hm, window, tau, tr)
            codec_xy, codec_peak = decode_np(hm.astype(np.float32), "local_soft_argmax", window, tau)
            err_ref = float(np.nanmax(np.abs(xy - ref_xy)))
            row = {"case": name, "shape": list(hm.shape), "dtype": str(hm.dtype), "window": window,
                   "tau": tau, "frame_transforms": with_tr, "max_err_vs_reference": err_ref,
                   "peaks_equal": bool(np.array_equal(peak, ref_peak))}
            if tr is None:
                row["max_err_vs_codec_hm_px"] = float(np.nanmax(np.abs(xy - codec_xy)))
            else:  # compare in heatmap pixels: scale the frame error back by each face's scale
                scale = np.linalg.norm(tr[:, 0, :2], axis=-1)[:, None, None]
                row["max_err_vs_reference_hm_px"] = float(np.nanmax(np.abs(xy - ref_xy) / scale))
            rows.append(row)
        worst_ref = max(r.get("max_err_vs_reference_hm_px", r["max_err_vs_reference"]) for r in rows)
        worst_codec = max(r.get("max_err_vs_codec_hm_px", 0.0) for r in rows)
        peaks = all(r["peaks_equal"] for r in rows)
        rep.check(f"kernel_{loader}_vs_reference", worst_ref <= TOL_HM_PX and peaks,
                  f"max {worst_ref:.2e} heatmap px over {len(rows)} cases, peaks equal: {peaks}")
        rep.check(f"kernel_{loader}_vs_codec", worst_codec <= TOL_HM_PX,
                  f"max {worst_codec:.2e} heatmap px")
        # raw device pointer, as from a TensorRT output buffer
        hm = np.random.default_rng(5).random((4, 68, 32, 32)).astype(np.float32)
        t = torch.from_numpy(hm).cuda()
        torch.cuda.synchronize()
        xy, _ = dec.decode(t.data_ptr(), 4, 68, 32, 32, 5, 10.0)
        err = float(np.abs(xy - local_soft_argmax_ref(hm)[0]).max())
        rep.check(f"kernel_{loader}_raw_pointer", err <= TOL_HM_PX, f"max {err:.2e}")
        out[loader] = {"compiler": dec.loader, "cases": rows, "raw_pointer_max_err": err}
    if not any("cases" in v for v in out.values()):
        rep.check("kernel_loaded", False, "no loader could load the kernel")
    return out


def kernel_timing() -> list[dict]:
    from tracker.core.codec import decode_np
    from tracker.engines.bench import kernel_microseconds, median_seconds
    from tracker.engines.cuda_decode import CudaDecoder

    dec = CudaDecoder()
    rows = []
    for hw in (32, 64):
        for b in BATCHES:
            for half in (False, True):
                us = kernel_microseconds(dec, b, 68, hw, hw, 5, 10.0, half, iters=200)
                hm = np.random.default_rng(0).random((b, 68, hw, hw)).astype(np.float32)
                cpu_s = median_seconds(partial(decode_np, hm), 20, 2)
                rows.append({"loader": dec.loader, "batch": b, "k": 68, "heatmap_hw": [hw, hw],
                             "dtype": "float16" if half else "float32", "microseconds": round(us, 2),
                             "microseconds_per_face": round(us / b, 3),
                             "numpy_codec_decode_microseconds": round(cpu_s * 1e6, 1)})
                print(f"   kernel B={b:3d} 68x{hw}x{hw} {'fp16' if half else 'fp32'}: {us:7.2f} us "
                      f"(numpy codec on the CPU: {cpu_s * 1e6:9.1f} us)")
    return rows


def torch_cuda(rep: Report, pt: Path) -> dict:
    import torch

    from tracker.engines.bench import median_seconds, throughput
    from tracker.engines.torch_backend import TorchBackend
    from tracker.engines.torch_cuda import TorchCudaBackend

    cpu = TorchBackend(pt)
    info = cpu.info
    x = face_inputs(info, 32)
    ref = cpu(x)
    ref_xy, _ = info.codec.decode(ref)
    out = {"model": str(pt), "runs": [], "input": "face crops" if _has_cv2() else "random"}
    for fp16 in (False, True):
        be = TorchCudaBackend(pt, fp16=fp16, cuda_graph_batches=BATCHES)
        hm = be(x)
        xy, _ = info.codec.decode(hm)
        err = np.linalg.norm(xy - ref_xy, axis=-1)  # input pixels
        kxy, kscore = be.decode_on_device(x)
        kerr = float(np.abs(kxy - xy).max())
        prec = "fp16" if fp16 else "fp32"
        run = {"precision": prec, "heatmap_max_abs_diff_vs_cpu": float(np.abs(hm - ref).max()),
               "heatmap_peak_scale": float(np.abs(ref).max()),
               "landmarks_vs_cpu_input_px": {"median": float(np.median(err)),
                                             "p99": float(np.percentile(err, 99)),
                                             "max": float(err.max())},
               "gpu_decode_vs_codec_input_px": kerr, "rows": []}
        rep.check(f"torch_cuda_{prec}_landmarks_vs_cpu", np.median(err) < (0.25 if fp16 else 0.05),
                  f"median {np.median(err):.4f} px, p99 {np.percentile(err, 99):.4f}, max {err.max():.3f} "
                  f"(input px, {len(err)} points)")
        rep.check(f"torch_cuda_{prec}_gpu_decode_vs_codec", kerr < 1e-3, f"max {kerr:.2e} input px")
        for b in BATCHES:
            xb = x[:b]
            row = throughput(median_seconds(partial(be, xb), 50, 10), b)
            row["decode_on_device"] = throughput(median_seconds(partial(be.decode_on_device, xb), 50, 10), b)
            # the network alone, graph replay only (no host copies)
            graph, _, _ = be._graphs[b]
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            for _ in range(5):
                graph.replay()
            start.record()
            for _ in range(50):
                graph.replay()
            end.record()
            end.synchronize()
            row["graph_replay_ms"] = round(start.elapsed_time(end) / 50, 4)
            run["rows"].append(row)
            print(f"   torch-cuda {prec} batch {b:2d}: {row['faces_per_s']:9.1f} faces/s "
                  f"({row['ms_per_face']:.3f} ms/face); with GPU decode "
                  f"{row['decode_on_device']['faces_per_s']:9.1f} faces/s; graph {row['graph_replay_ms']:.3f} ms")
        out["runs"].append(run)
        be = None  # free the graphs before the next precision
        torch.cuda.empty_cache()
    return out


def tensorrt(rep: Report, onnx_path: Path | None, out_dir: Path) -> dict:
    import importlib.util

    missing = [m for m in ("tensorrt", "pycuda") if importlib.util.find_spec(m) is None]
    if missing:
        return {"skipped": f"not installed: {', '.join(missing)}"}
    if onnx_path is None:
        return {"skipped": "no .onnx beside the model"}
    from tracker.engines.bench import median_seconds, throughput
    from tracker.engines.onnxruntime_backend import OnnxBackend
    from tracker.engines.tensorrt_backend import TensorRTBackend
    from tracker.engines.tensorrt_build import build_engine

    cache = out_dir / "engine_cache"
    ort = OnnxBackend(onnx_path)
    x = face_inputs(ort.info, 32)
    ref = ort(x)
    ref_xy, _ = ort.info.codec.decode(ref)
    out = {"runs": []}
    for fp16 in (False, True):
        prec = "fp16" if fp16 else "fp32"
        t0 = time.perf_counter()
        engine = build_engine(onnx_path, max(BATCHES), fp16=fp16, cache_dir=cache)
        build_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        be = TensorRTBackend(onnx_path, max_batch=max(BATCHES), precision=prec, cache_dir=cache)
        load_s = time.perf_counter() - t0
        rep.check(f"tensorrt_{prec}_backend_loads_the_built_engine", be.engine_path == engine,
                  f"{be.engine_path.name}, built in {build_s:.1f} s, loaded in {load_s:.2f} s")
        xy, _ = ort.info.codec.decode(be(x))
        err = np.linalg.norm(xy - ref_xy, axis=-1)
        kxy, _ = be.decode_on_device(x)
        rep.check(f"tensorrt_{prec}_landmarks_vs_onnxruntime", np.median(err) < (0.25 if fp16 else 0.05),
                  f"median {np.median(err):.4f} px, max {err.max():.3f}")
        run = {"precision": prec, "build_s": round(build_s, 1), "load_s": round(load_s, 2),
               "engine": str(be.engine_path),
               "landmarks_vs_ort_median_px": float(np.median(err)),
               "gpu_decode_vs_codec_input_px": float(np.abs(kxy - xy).max()), "rows": []}
        for b in BATCHES:
            xb = x[:b]
            row = throughput(median_seconds(partial(be, xb), 50, 10), b)
            row["decode_on_device"] = throughput(median_seconds(partial(be.decode_on_device, xb), 50, 10), b)
            run["rows"].append(row)
            print(f"   tensorrt {prec} batch {b:2d}: {row['faces_per_s']:9.1f} faces/s")
        out["runs"].append(run)
    return out


def bench_json(pt: Path, out_dir: Path) -> dict:
    """`engines bench` for the GPU backends, its JSON written to out_dir (copy it to
    docs/results/)."""
    import importlib.util

    from tracker.engines.bench import BenchConfig, run

    backends = ("torch-cuda",) + (("tensorrt",) if importlib.util.find_spec("tensorrt")
                                  and pt.with_suffix(".onnx").is_file() else ())
    res = run(BenchConfig(pt, backends, BATCHES, ("fp32", "fp16"), iters=50, warmup=10,
                          out_dir=out_dir), log=lambda s: print("   " + s, flush=True))
    return {"written_to": res["written_to"]}


def run_pytest(rep: Report) -> dict:
    import importlib.util

    if importlib.util.find_spec("pytest") is None:
        return {"skipped": "pytest is not installed"}
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "tests/engines"], cwd=ROOT,
                       capture_output=True, text=True, timeout=400)
    tail = (r.stdout + r.stderr).strip().splitlines()[-40:]
    rep.check("pytest_tests_engines", r.returncode == 0, tail[-1] if tail else f"rc {r.returncode}")
    return {"rc": r.returncode, "tail": tail}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir", type=Path, help="folder for verify_gpu.json")
    ap.add_argument("--model", type=Path, default=None,
                    help="a shipped .pt (default: the bundled default model; an untrained rt-m if absent)")
    ap.add_argument("--skip-pytest", action="store_true")
    a = ap.parse_args(argv)
    a.out_dir.mkdir(parents=True, exist_ok=True)
    rep = Report()
    env = rep.section("environment", environment)
    if not env or not env.get("cuda_available"):
        rep.check("cuda_available", False, "torch sees no CUDA device")
    else:
        arch = env["compute_capability"].replace(".", "")
        rep.section("nvcc", nvcc_compile, rep, arch)
        model = rep.section("model", lambda: [str(p) if isinstance(p, Path) else p for p in load_model(a.model)])
        net_hm = None
        if model:
            pt = Path(model[0])
            rep.data["model"] = {"pt": model[0], "onnx": model[1], "shipped_model": model[2]}
            try:
                from tracker.engines.torch_backend import TorchBackend

                cpu = TorchBackend(pt)
                net_hm = cpu(face_inputs(cpu.info, 14))
            except Exception as e:
                print(f"   network heatmaps unavailable: {e}")
        rep.section("kernel", kernel_checks, rep, net_hm)
        rep.section("kernel_timing", kernel_timing)
        if model:
            rep.section("torch_cuda", torch_cuda, rep, Path(model[0]))
            rep.section("tensorrt", tensorrt, rep, Path(model[1]) if model[1] else None, a.out_dir)
            rep.section("bench_engines", bench_json, Path(model[0]), a.out_dir)
    if not a.skip_pytest:
        rep.section("pytest", run_pytest, rep)
    rep.data["failed"] = rep.failed
    rep.data["ok"] = not rep.failed
    out = a.out_dir / "verify_gpu.json"
    out.write_text(json.dumps(rep.data, indent=1, default=str))
    print(f"\n{'ALL CHECKS PASSED' if not rep.failed else 'FAILED: ' + ', '.join(rep.failed)}")
    print(f"wrote {out}")
    return 0 if not rep.failed else 1


if __name__ == "__main__":
    sys.exit(main())
