"""Size, compute and CPU latency of every preset in `tracker.core.model_config.PRESETS`.

For each preset: parameters, multiply-accumulates of one batch-1 forward pass (convolutions;
FLOPs = 2 x MACs), and the onnxruntime CPU latency at batch 1 (median and 90th percentile of N
runs after a warm-up, default thread settings) of an untrained export (latency does not depend on
the weights; BatchNorm is folded at export as for a shipped model).

    nice -n 10 python scripts/model_stats.py [--runs 100] [--paper-runs 10] [--note TEXT]

Writes docs/results/model_stats.md and docs/results/model_stats.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.machine import cpu_name  # noqa: E402
from tracker.core.codec import HeatmapCodec  # noqa: E402
from tracker.core.model import FAN, count_macs, count_params  # noqa: E402
from tracker.core.model_config import PRESETS  # noqa: E402
from tracker.core.modelfile import INPUT_NAME, OUTPUT_NAME, ModelInfo  # noqa: E402

PAPER = "fan2-256"


def onnx_latency_ms(path: Path, input_hw: tuple[int, int], runs: int, warmup: int = 5,
                    threads: int | None = None) -> list[float]:
    """Batch-1 onnxruntime CPU latencies in ms of the model at `path` (`threads`: its
    intra-op threads, None: its default)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    if threads is not None:
        so.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((1, 3, *input_hw)).astype(np.float32)
    for _ in range(warmup):
        sess.run([OUTPUT_NAME], {INPUT_NAME: x})
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run([OUTPUT_NAME], {INPUT_NAME: x})
        times.append((time.perf_counter() - t) * 1e3)
    return times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=100, help="timed runs per real-time preset")
    ap.add_argument("--paper-runs", type=int, default=10,
                    help=f"timed runs for the big {PAPER} preset (0 skips its latency)")
    ap.add_argument("--presets", nargs="*", default=list(PRESETS), help="presets to measure")
    ap.add_argument("--note", default="", help="a line about the conditions, written to the results")
    ap.add_argument("--out", default=str(ROOT / "docs" / "results"), help="output folder")
    args = ap.parse_args(argv)
    unknown = [p for p in args.presets if p not in PRESETS]
    if unknown:
        print(f"error: unknown preset(s) {unknown}; known: {list(PRESETS)}", file=sys.stderr)
        return 2

    import onnxruntime as ort
    import torch

    from tracker.engines.export import export_onnx

    load = os.getloadavg()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.presets:
            cfg = PRESETS[name]
            torch.manual_seed(0)
            net = FAN(cfg).eval()
            row = {"params": count_params(net), "macs": count_macs(net),
                   "input_hw": list(cfg.input_hw), "heatmap_hw": list(cfg.heatmap_hw),
                   "stacks": cfg.stacks, "width": cfg.width, "depth": cfg.depth}
            row["flops"] = 2 * row["macs"]
            runs = args.paper_runs if name == PAPER else args.runs
            if runs > 0:
                path = Path(tmp) / f"{name}.onnx"
                info = ModelInfo(name, cfg, HeatmapCodec(cfg.input_hw, cfg.heatmap_hw))
                export_onnx(net, info, path, check=False)
                t = onnx_latency_ms(path, cfg.input_hw, runs)
                row.update(runs=runs, latency_ms_median=float(np.median(t)),
                           latency_ms_p90=float(np.percentile(t, 90)),
                           latency_ms_min=float(np.min(t)))
            rows[name] = row
            lat = (f"{row['latency_ms_median']:.2f} ms median of {runs}" if runs > 0 else "latency skipped")
            print(f"{name}: {row['params'] / 1e6:.3f} M params, {row['macs'] / 1e9:.3f} GMACs, {lat}",
                  flush=True)

    machine = (f"{cpu_name()}, {os.cpu_count()} logical cores, onnxruntime {ort.__version__} "
               f"(CPUExecutionProvider, default threads), torch {torch.__version__}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "model_stats.json").write_text(json.dumps(
        {"machine": machine, "load_average_at_start": load, "note": args.note, "presets": rows},
        indent=1))
    lines = ["# Model size, compute and CPU latency", "",
             "Produced by `scripts/model_stats.py`. MACs: convolutions of one forward pass at batch 1 "
             "(FLOPs = 2 x MACs). Latency: onnxruntime, batch 1, untrained export (BN folded), "
             "after 5 warm-up runs.", "",
             f"- Machine: {machine}.",
             f"- Load average at start: {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}."]
    if args.note:
        lines.append(f"- {args.note}")
    lines += ["", "| preset | stacks x width, depth | input -> heatmap | params (M) | GMACs | GFLOPs "
              "| latency median (ms) | p90 (ms) | runs |", "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in rows.items():
        lat = ((f"{r['latency_ms_median']:.2f} | {r['latency_ms_p90']:.2f} | {r['runs']}")
               if "runs" in r else "skipped | | 0")
        lines.append(f"| {name} | {r['stacks']} x {r['width']}, {r['depth']} | "
                     f"{r['input_hw'][0]}x{r['input_hw'][1]} -> {r['heatmap_hw'][0]}x{r['heatmap_hw'][1]} | "
                     f"{r['params'] / 1e6:.3f} | {r['macs'] / 1e9:.3f} | {r['flops'] / 1e9:.3f} | {lat} |")
    (out / "model_stats.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / 'model_stats.md'} and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
