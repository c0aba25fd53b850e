"""Bundled models against each other end to end, in turn: `scripts/bench_tracker.py --model M
--methods ours mediapipe --no-sweep` for every model, round after round, so that this VM's
swings (mediapipe's own rate moves by a quarter within the hour) fall on every model alike.

    python scripts/bench_models.py rt-sep-kd rt-sep-112-kd rt-m --rounds 3

Per model and clip: ours / mediapipe (each run's ratio; median and range over the rounds),
ours' fps, and the tracker's inference stage in ms per frame (mean over rounds). Writes
docs/results/bench_models.{md,json} (--name to change it) and keeps each run's own report
beside it (bench_models_runs/).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_one(model: str, out: Path, name: str) -> dict:
    cmd = [sys.executable, str(ROOT / "scripts" / "bench_tracker.py"), "--model", model, "--methods", "ours",
           "mediapipe", "--no-sweep", "--out", str(out), "--name", name]
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return json.loads((out / f"{name}.json").read_text())


def summarise(reports: dict[str, list[dict]]) -> list[dict]:
    rows = []
    for model, runs in reports.items():
        for c, clip in enumerate(runs[0]["clips"]):
            per = [r["clips"][c]["methods"] for r in runs]
            ratio = [m["ours"]["fps_best"] / m["mediapipe"]["fps_best"] for m in per]
            rows.append({"model": model, "clip": clip["size"], "rounds": len(runs),
                         "ratio_median": statistics.median(ratio), "ratio_min": min(ratio),
                         "ratio_max": max(ratio),
                         "ours_fps_median": statistics.median(m["ours"]["fps_best"] for m in per),
                         "infer_ms_mean": statistics.fmean(m["ours"]["stages_ms_per_frame"]["infer"] for m in per)})
    return rows


def write_md(rows: list[dict], machine: dict, models: list[str], path: Path) -> None:
    lines = ["# Bundled models end to end, in turn", "",
             f"`python scripts/bench_models.py {' '.join(models)} --rounds {rows[0]['rounds']}`: each round runs "
             "`scripts/bench_tracker.py --model M --methods ours mediapipe --no-sweep` for every model in turn "
             "(ours and mediapipe on the same clips, best of 3 passes each). "
             f"Machine: {machine['cpu']}, {machine['cores']} logical CPUs, {machine['platform']}; "
             f"training job running: {'yes' if machine['training_job'] else 'no'}.", "",
             "| model | clip | ours / mediapipe, median | range | ours fps, median | inference ms/frame |",
             "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['clip']} | {r['ratio_median']:.2f} | {r['ratio_min']:.2f}-"
                     f"{r['ratio_max']:.2f} | {r['ours_fps_median']:.1f} | {r['infer_ms_mean']:.2f} |")
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", help="bundled model names or files")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "results")
    ap.add_argument("--name", default="bench_models")
    args = ap.parse_args(argv)
    runs_dir = args.out / f"{args.name}_runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    reports: dict[str, list[dict]] = {m: [] for m in args.models}
    for k in range(args.rounds):
        for m in args.models:
            r = run_one(m, runs_dir, f"{Path(m).stem}_{k + 1}")
            reports[m].append(r)
            print(f"round {k + 1} {m}: " + ", ".join(
                f"{c['size']} {c['methods']['ours']['fps_best'] / c['methods']['mediapipe']['fps_best']:.2f}"
                for c in r["clips"]), flush=True)
    rows = summarise(reports)
    machine = {**reports[args.models[0]][0]["machine"],
               "training_job": any(r["machine"]["training_job"] for rs in reports.values() for r in rs)}
    (args.out / f"{args.name}.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=1))
    write_md(rows, machine, args.models, args.out / f"{args.name}.md")
    print((args.out / f"{args.name}.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
