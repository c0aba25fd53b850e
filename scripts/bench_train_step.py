"""Time of one training step on this CPU, per preset and memory layout: forward through every
stack, the adaptive wing loss on each, backward and Adam, as `train.loop.Trainer.train_step`
does them (without the augmentation, which runs the same in either layout).

    python scripts/bench_train_step.py [--presets rt-sep rt-sep2-192] [--batch 32]
                                       [--steps 8] [--threads 2] [--note TEXT]

Run it on an idle machine. The first two steps of each arm are warm-up; the median of the
rest is reported, and the faces per second it implies. Writes docs/results/train_step.json
and .md (--name to change).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from scripts.machine import describe  # noqa: E402
from tracker.core.model import FAN  # noqa: E402
from tracker.core.model_config import PRESETS  # noqa: E402
from train.loss import LOSSES  # noqa: E402

LAYOUTS = {"contiguous (NCHW)": torch.contiguous_format, "channels last (NHWC)": torch.channels_last}
WARMUP = 2


def step_times(preset: str, layout: torch.memory_format, batch: int, steps: int) -> list[float]:
    """Seconds of each of `steps` training steps on random inputs and targets."""
    torch.manual_seed(0)
    mc = PRESETS[preset]
    model = FAN(mc).to(memory_format=layout).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.randn(batch, 3, *mc.input_hw).contiguous(memory_format=layout)
    target = torch.rand(batch, mc.n_points, *mc.heatmap_hw)
    weight = torch.ones(batch)
    loss_fn = LOSSES["awing"]
    times = []
    for _ in range(WARMUP + steps):
        t0 = time.perf_counter()
        loss = sum(loss_fn(o, target, weight) for o in model.forward_all(x))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return times[WARMUP:]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--presets", nargs="+", default=["rt-sep", "rt-sep2-192"])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--note", default="")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "results")
    ap.add_argument("--name", default="train_step")
    a = ap.parse_args(argv)
    unknown = [p for p in a.presets if p not in PRESETS]
    if unknown:
        ap.error(f"unknown presets {unknown}; known: {sorted(PRESETS)}")
    torch.set_num_threads(a.threads)
    rows = []
    for preset in a.presets:
        for name, layout in LAYOUTS.items():
            t = statistics.median(step_times(preset, layout, a.batch, a.steps))
            rows.append({"preset": preset, "layout": name, "s_per_step": t, "faces_per_s": a.batch / t})
            print(f"{preset:14s} {name:22s} {t:.3f} s/step  {a.batch / t:.1f} faces/s", flush=True)
    machine = describe()
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / f"{a.name}.json").write_text(json.dumps(
        {"machine": machine, "threads": a.threads, "batch": a.batch, "steps": a.steps,
         "note": a.note, "rows": rows}, indent=1) + "\n")
    lines = ["# Training step time by memory layout\n",
             f"`python scripts/bench_train_step.py` ({a.threads} threads, batch {a.batch}, median of "
             f"{a.steps} steps after {WARMUP} of warm-up; forward, adaptive wing loss on every stack, "
             "backward, Adam; no augmentation). The trainer keeps models and inputs channels last "
             "(`train.targets.MEMORY_FORMAT`).\n",
             "| preset | layout | s per step | faces/s | vs contiguous |", "|---|---|---:|---:|---:|"]
    base = {r["preset"]: r["s_per_step"] for r in rows if r["layout"].startswith("contiguous")}
    for r in rows:
        lines.append(f"| {r['preset']} | {r['layout']} | {r['s_per_step']:.3f} | {r['faces_per_s']:.1f} | "
                     f"{base[r['preset']] / r['s_per_step']:.2f}x |")
    lines.append(f"\nMachine: {machine}." + (f" {a.note}" if a.note else ""))
    (a.out / f"{a.name}.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
