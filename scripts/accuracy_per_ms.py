"""Accuracy against CPU cost for candidate models: validation NME on the identity-split
held-out human faces (never the test set), on plain crops and on crops turned upright (as the
tracker cuts them) and with the per-point offsets each model would ship with (its mean residual
on the human training faces, `scripts/calibrate_offsets.py`), beside onnxruntime's batch-1
latency with 1 and 2 threads.

    python scripts/accuracy_per_ms.py tracker/models/rt-sep2-192.pt tracker/models/rt-sep-112-kd.pt \\
        tracker/models/rt-sep-kd.pt tracker/models/rt-m.pt

Each model is scored on the same faces (the validation split of `train.sampling.split` with
the default `TrainConfig`: 8 % of the human identity groups), cut from the crop cache of its
input size (`python -m train.cache DATA --side S`; `--cache` forces one), and exported to ONNX (BN folded,
as onnxruntime runs the shipped files) for the timing. Writes docs/results/accuracy_per_ms.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.calibrate_offsets import measure  # noqa: E402
from scripts.machine import cpu_name  # noqa: E402
from scripts.model_stats import onnx_latency_ms  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", type=Path, help="shipped .pt files or training checkpoints")
    ap.add_argument("--cache", type=Path, default=None,
                    help="the crop cache (default: the one cut for each model's input size)")
    ap.add_argument("--runs", type=int, default=200, help="timed runs per model and thread count")
    ap.add_argument("--note", default="", help="a line about the conditions")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "results")
    args = ap.parse_args(argv)

    import torch

    from tracker.core.model import count_macs, count_params
    from tracker.core.modelfile import load_torch
    from tracker.engines.export import export_onnx
    from train.cache import DEFAULT_DIR, Cache, path_for
    from train.config import TrainConfig
    from train.sampling import split
    from train.validation import validate

    torch.set_num_threads(2)
    caches: dict[Path, tuple] = {}
    faces = None  # the validation faces' groups, the same in every cache

    def cache_for(input_side: int) -> tuple:
        path = args.cache or path_for(input_side, ROOT / DEFAULT_DIR)
        if path not in caches:
            cache = Cache.load(path)  # a missing one names the command that cuts it
            caches[path] = cache, split(cache, TrainConfig())[1]
        return caches[path]

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in args.models:
            net, info = load_torch(path)
            net = net.float().eval()
            cache, val_idx = cache_for(info.model.input_hw[0])
            if faces is not None and list(cache.group[val_idx]) != faces:
                raise SystemExit(f"error: the caches hold other validation faces ({path})")
            faces = list(cache.group[val_idx])
            metrics = validate(net, info.codec, cache, val_idx)
            upright = {f"upright_{k}": v for k, v in
                       validate(net, info.codec, cache, val_idx, upright=True).items()}
            calibrated = {f"offsets_{k}": v for k, v in measure(path, cache)[1]["offsets"].items()}
            onnx = Path(tmp) / f"{path.stem}.onnx"
            export_onnx(net, info, onnx, check=False)
            ms = {t: float(np.median(onnx_latency_ms(onnx, info.model.input_hw, args.runs, 20, t)))
                  for t in (1, 2)}
            row = {"model": str(path), "name": info.name, "stacks": info.model.stacks,
                   "width": info.model.width, "input": info.model.input_hw[0],
                   "params": count_params(net), "macs": count_macs(net), "faces": len(val_idx),
                   "ms_1_thread": ms[1], "ms_2_threads": ms[2], **metrics, **upright, **calibrated}
            rows.append(row)
            print(f"{path}: val NME {100 * row['val_nme']:.2f} % (median {100 * row['val_median']:.2f}; "
                  f"upright {100 * row['upright_val_nme']:.2f}), "
                  f"{ms[1]:.2f} ms (1 thread), {ms[2]:.2f} ms (2 threads)", flush=True)
    machine = f"{cpu_name()}, {os.cpu_count()} logical cores"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "accuracy_per_ms.json").write_text(json.dumps(
        {"machine": machine, "note": args.note, "load_average": os.getloadavg(), "rows": rows}, indent=1))
    lines = ["# Accuracy against CPU cost", "",
             f"`python scripts/accuracy_per_ms.py {' '.join(str(m) for m in args.models)}`. Validation: "
             f"{len(val_idx)} held-out human-labelled 300-W faces (identity split; never the test set), "
             "NME over the outer-eye-corner distance; 'upright': each crop turned to the face's eye line "
             "first, as the tracker cuts them; 'offsets': with the model's per-point offsets "
             "(`scripts/calibrate_offsets.py`). Latency: onnxruntime, batch 1, median of "
             f"{args.runs} runs, BN folded.", "", f"- Machine: {machine}."]
    if args.note:
        lines.append(f"- {args.note}")
    lines += ["", "| model | stacks x width | input | params (M) | GMACs | val NME % | val median % "
              "| AUC@0.08 | upright: NME % | median % | offsets: NME % | median % | ms, 1 thread "
              "| ms, 2 threads |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['stacks']} x {r['width']} | {r['input']} | {r['params'] / 1e6:.2f} | "
                     f"{r['macs'] / 1e9:.3f} | {100 * r['val_nme']:.2f} | {100 * r['val_median']:.2f} | "
                     f"{r['val_auc@0.08']:.3f} | {100 * r['upright_val_nme']:.2f} | "
                     f"{100 * r['upright_val_median']:.2f} | {100 * r['offsets_val_nme']:.2f} | "
                     f"{100 * r['offsets_val_median']:.2f} | {r['ms_1_thread']:.2f} | {r['ms_2_threads']:.2f} |")
    (args.out / "accuracy_per_ms.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out / 'accuracy_per_ms.md'} and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
