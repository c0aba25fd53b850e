"""How each model was trained: validation NME against the CPU hours spent, from the runs' own logs.

A model is a lineage of runs, each warm-started from the one before (`init`); a run is its
`metrics.csv` (one row per epoch, written by `train.loop`) with its config beside it
(`config.json`, or `<stage>_config.json` beside `<stage>_metrics.csv`). An epoch's time is its
faces (`samples_per_epoch`) over the faces per second the log has for it (training steps only:
validation and checkpoints add about 20 s an epoch on the 2-core CPU, uncounted), so hours are
those of the machine the run had, shared or not, as its log measured them.

    python scripts/training_curves.py                       # every lineage in LINEAGES
    python scripts/training_curves.py --lineage NAME=RUN_DIR_OR_CSV[,...] ...

Writes docs/results/training_curves.{png,md,json}.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_RT_M = ["docs/results/train_rt-m/stage1_metrics.csv", "docs/results/train_rt-m/stage2_metrics.csv",
         "docs/results/train_rt-m/stage3_metrics.csv", "docs/results/train_rt-m/stage4_metrics.csv",
         "train/checkpoints/rt-m-stage5"]
_RT_L = _RT_M + ["train/checkpoints/rt-l", "train/checkpoints/rt-l-stage2"]
# The runs behind each bundled model (and rt-l, rt-l-112, rt-xl, rt-sep-160, rt-sep and rt-sep-112,
# which left the bundle, and the long default run, the run on the sub-pixel teacher's labels,
# rt-sep2 and rt-sep2-160, not shipped), in order; the model card tells the same story in words.
LINEAGES = {
    "rt-m": _RT_M,
    "rt-l": _RT_L,
    "rt-l-112": _RT_L + ["train/checkpoints/rt-l-112"],
    "rt-xl": _RT_L + ["train/checkpoints/rt-xl"],
    "rt-sep": ["train/checkpoints/rt-sep"],
    "rt-sep-kd": ["train/checkpoints/rt-sep", "train/checkpoints/rt-sep-distil-decoded"],
    "rt-sep-112": ["train/checkpoints/rt-sep", "train/checkpoints/rt-sep-112"],
    "rt-sep-112-kd": ["train/checkpoints/rt-sep", "train/checkpoints/rt-sep-distil-decoded",
                      "train/checkpoints/rt-sep-112-kd"],
    "rt-sep-160": ["train/checkpoints/rt-sep", "train/checkpoints/rt-sep-160", "train/checkpoints/rt-sep-160-occl"],
    "rt-sep-occl-long (not shipped)": ["train/checkpoints/rt-sep-occl-long"],
    "rt-sep on sub-pixel teacher labels (not shipped)": ["train/checkpoints/rt-sep-subpixel-scratch"],
    "rt-sep2 (not shipped)": ["train/checkpoints/rt-sep", "train/checkpoints/rt-sep2"],
    "rt-sep2-192": ["train/checkpoints/rt-sep2-192-scratch", "train/checkpoints/rt-sep2-192-occl"],
    "rt-sep2-160 (not shipped)": ["train/checkpoints/rt-sep2-160-scratch",
                                  "train/checkpoints/rt-sep2-160-distil"],
}


def run_files(run: str | Path) -> tuple[Path, Path]:
    """(metrics.csv, config.json) of a run given as its folder or its metrics file."""
    p = Path(run)
    if not p.is_absolute():
        p = ROOT / p
    if p.is_dir():
        return p / "metrics.csv", p / "config.json"
    if p.name.endswith("_metrics.csv"):
        return p, p.with_name(p.name[: -len("_metrics.csv")] + "_config.json")
    return p, p.with_name("config.json")


def read_run(run: str | Path) -> dict:
    """One run's epochs: {"run", "epochs": [{"epoch", "lr", "hours", "val_nme", "val_median"}]}
    (hours: this epoch's own training time)."""
    metrics, config = run_files(run)
    if not metrics.is_file() or not config.is_file():
        raise FileNotFoundError(f"{run}: needs {metrics.name} and {config.name} (a run folder or its metrics CSV)")
    per_epoch = json.loads(config.read_text())["samples_per_epoch"]
    epochs = []
    for row in csv.DictReader(metrics.open()):
        epochs.append({"epoch": int(row["epoch"]), "lr": float(row["lr"]), "hours": per_epoch / float(row["faces_per_s"]) / 3600,
                       "val_nme": float(row["val_nme"]), "val_median": float(row["val_median"])})
    return {"run": str(run), "faces_per_epoch": per_epoch, "epochs": epochs}


def lineage_curve(runs: list[dict]) -> dict:
    """Cumulative hours and the validation NME after each epoch, over the runs in order; the
    totals; the last run's best epoch (the shipped one where the model was shipped) and its
    settled level: the mean, least and greatest NME of its epochs after its first rate drop
    (its plateau; a best epoch alone is partly the pick of the validation noise)."""
    hours, nme, t, faces = [], [], 0.0, 0
    for r in runs:
        for e in r["epochs"]:
            t += e["hours"]
            faces += r["faces_per_epoch"]
            hours.append(t)
            nme.append(e["val_nme"])
    last = runs[-1]["epochs"]
    best = min(last, key=lambda e: e["val_nme"])
    settled = [e["val_nme"] for e in last if e["lr"] < last[0]["lr"]]
    return {"hours": hours, "val_nme": nme, "total_hours": t, "faces_seen": faces,
            "epochs": len(hours),
            "best_last_run": {"epoch": best["epoch"], "val_nme": best["val_nme"], "val_median": best["val_median"]},
            "settled_last_run": ({"epochs": len(settled), "mean": sum(settled) / len(settled),
                                  "min": min(settled), "max": max(settled)} if settled else None)}


def plot(curves: dict[str, dict], path: Path, ylim: tuple[float, float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    # Longest first, so a lineage drawn over its own ancestors stays visible on top.
    for name, c in sorted(curves.items(), key=lambda kv: -kv[1]["total_hours"]):
        ax.plot(c["hours"], [v * 100 for v in c["val_nme"]], marker=".", markersize=3, linewidth=1,
                label=f"{name}: {c['total_hours']:.1f} h, best {c['best_last_run']['val_nme'] * 100:.2f} %")
    ax.set_ylim(*ylim)
    ax.set_xlabel("training hours on the run's machine (cumulative over warm-started stages)")
    ax.set_ylabel("validation NME (inter-ocular, %)")
    ax.set_title("Validation NME per epoch (173 held-out human-labelled faces)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _settled(s: dict | None) -> str:
    if s is None:
        return "no rate drop"
    return f"{s['mean'] * 100:.2f} ({s['min'] * 100:.2f}-{s['max'] * 100:.2f}, {s['epochs']} epochs)"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lineage", action="append", default=[], metavar="NAME=RUN[,RUN...]",
                    help="a model and its runs in order (default: every lineage in LINEAGES)")
    ap.add_argument("--ylim", type=float, nargs=2, default=(3.3, 5.0), help="NME %% range of the plot")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "results")
    a = ap.parse_args(argv)
    lineages = dict(LINEAGES)
    if a.lineage:
        lineages = {}
        for spec in a.lineage:
            name, sep, runs = spec.partition("=")
            if not sep or not runs:
                ap.error(f"--lineage {spec!r}: expected NAME=RUN[,RUN...]")
            lineages[name] = runs.split(",")
    try:
        curves = {name: lineage_curve([read_run(r) for r in runs]) for name, runs in lineages.items()}
    except FileNotFoundError as e:
        print(f"training_curves: {e}", file=sys.stderr)
        return 2
    a.out.mkdir(parents=True, exist_ok=True)
    plot(curves, a.out / "training_curves.png", tuple(a.ylim))
    (a.out / "training_curves.json").write_text(json.dumps(
        {"lineages": lineages, "curves": curves}, indent=1) + "\n")
    lines = ["# Training curves", "",
             "`python scripts/training_curves.py` (from the runs' logs, which do not name a machine: all "
             "ran on this project's 2-core AMD EPYC VM, often shared). Hours: each epoch's faces over its logged training rate, summed over "
             "the warm-started runs behind the model; best: the last run's best validation epoch; settled: "
             "the mean (least-greatest) of the last run's epochs after its first rate drop.", "",
             "| model | runs | epochs | faces seen (k) | training hours | best val NME % | its median % | settled val NME % |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, c in curves.items():
        b = c["best_last_run"]
        lines.append(f"| {name} | {len(lineages[name])} | {c['epochs']} | {c['faces_seen'] / 1000:.0f} | "
                     f"{c['total_hours']:.1f} | {b['val_nme'] * 100:.2f} | {b['val_median'] * 100:.2f} | "
                     f"{_settled(c['settled_last_run'])} |")
    lines += ["", "![training curves](training_curves.png)", ""]
    (a.out / "training_curves.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
