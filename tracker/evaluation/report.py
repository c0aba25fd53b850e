"""Evaluation results as files (JSON, CSV, NPZ, CED plots) and as text tables."""
from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np

from tracker.core.metrics import plot_ced
from tracker.evaluation.scoring import (
    CUTOFF_300VW,
    MISSED_NME,
    POINT_SETS,
)


def write_300vw(result: dict, out: str | os.PathLike, points: str = "49") -> list[Path]:
    """Write results.json, frames.csv, videos.csv, predictions.npz and ced_<category>.png
    (49 and 68 points) to `out`; returns the paths written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    summary = {k: v for k, v in result.items() if k not in ("rows", "predictions")}
    summary["headline_points"] = points
    summary["missed_nme"] = MISSED_NME
    summary["face_choice"] = ("closest landmark-box centre to the annotation, among returned "
                              "faces centred inside the annotation's box")
    p = out / "results.json"
    p.write_text(json.dumps(jsonable(summary), indent=1))
    written.append(p)
    p = out / "frames.csv"
    with p.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["clip", "category", "frame", "n_faces", "missed", "nme49", "nme68"])
        for r in result["rows"]:
            w.writerow([r.clip, r.category, r.frame, r.n_faces, int(r.missed), f"{r.nme49:.6f}",
                        f"{r.nme68:.6f}"])
    written.append(p)
    p = out / "videos.csv"
    with p.open("w", newline="") as f:
        w = csv.writer(f)
        head = ["clip", "category", "frames", "missed"]
        for s in POINT_SETS:
            head += [f"mean{s}", f"median{s}", f"auc{s}@0.08", f"fr{s}@0.08"]
        w.writerow(head)
        for clip, v in result["videos"].items():
            row = [clip, v["category"], v["frames"], v["missed"]]
            for s in POINT_SETS:
                row += [f"{v[s]['mean']:.6f}", f"{v[s]['median']:.6f}", f"{v[s]['auc@0.08']:.4f}",
                        f"{v[s]['fr@0.08']:.4f}"]
            w.writerow(row)
    written.append(p)
    p = out / "predictions.npz"
    arrays = {}
    for clip, (frames, pts) in result["predictions"].items():
        arrays[f"{clip}/frames"], arrays[f"{clip}/points"] = frames, pts
    np.savez_compressed(p, **arrays)
    written.append(p)
    for cat in result["categories"]:
        rs = [r for r in result["rows"] if cat == "all" or r.category == cat]
        p = out / f"ced_{cat}.png"
        plot_ced({"49 points": np.array([r.nme49 for r in rs]),
                  "68 points": np.array([r.nme68 for r in rs])}, str(p), CUTOFF_300VW,
                 title=f"300VW category {cat}: {len(rs)} frames")
        written.append(p)
    return written


def table_300vw(result: dict, points: str = "49") -> str:
    """A short text table: one line per category (the headline point set first)."""
    other = "68" if points == "49" else "49"
    lines = [f"{'category':<9}{'videos':>7}{'frames':>8}{'missed':>8}  "
             f"{'NME' + points + ' %':>9}{'median %':>9}{'AUC@.08':>9}{'FR@.08 %':>9}  "
             f"{'NME' + other + ' %':>9}{'AUC@.08':>9}"]
    for cat, v in result["categories"].items():
        a, b = v[points], v[other]
        lines.append(f"{cat:<9}{v['videos']:>7}{v['frames']:>8}{v['missed']:>8}  "
                     f"{a['mean'] * 100:>9.2f}{a['median'] * 100:>9.2f}{a['auc@0.08']:>9.3f}"
                     f"{a['fr@0.08'] * 100:>9.1f}  {b['mean'] * 100:>9.2f}{b['auc@0.08']:>9.3f}")
    return "\n".join(lines)


def write_images(results: Sequence[dict], out: str | os.PathLike, stem: str = "images") -> list[Path]:
    """Write <stem>.json (summaries), <stem>_faces.csv (per face, every result) and
    <stem>_ced.png (inter-ocular CED of every result) to `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    p_json, p_csv, p_png = out / f"{stem}.json", out / f"{stem}_faces.csv", out / f"{stem}_ced.png"
    p_json.write_text(json.dumps(jsonable(
        [{"name": r["name"], "protocol": r["protocol"], **r["summary"]} for r in results]), indent=1))
    kinds = sorted({k for r in results for row in r["rows"] for k in row.errors})
    with p_csv.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["model", "protocol", "image", "face", "n_faces", "missed", "ms",
                    *[f"nme_{k}" for k in kinds]])
        for r in results:
            for row in r["rows"]:
                w.writerow([r["name"], r["protocol"], row.image, row.face, row.n_faces, int(row.missed),
                            f"{row.ms:.2f}", *[f"{row.errors.get(k, float('nan')):.6f}" for k in kinds]])
    plot_ced({f"{r['name']} ({r['protocol']})": np.array([row.errors["io"] for row in r["rows"]])
              for r in results}, str(p_png), 0.10, title="CED, inter-ocular NME")
    return [p_json, p_csv, p_png]


def table_images(results: Sequence[dict]) -> str:
    """A short text table, one line per result, inter-ocular NME."""
    lines = [f"{'model':<28}{'protocol':<10}{'faces':>6}{'missed':>7}{'NME %':>8}{'median':>8}"
             f"{'AUC@.08':>8}{'FR@.08':>8}{'AUC@.1':>8}{'FR@.1':>8}{'ms/face':>9}"]
    for r in results:
        s, io = r["summary"], r["summary"]["io"]
        lines.append(f"{r['name']:<28}{r['protocol']:<10}{s['faces']:>6}{s['missed']:>7}"
                     f"{io['mean'] * 100:>8.2f}{io['median'] * 100:>8.2f}{io['auc@0.08']:>8.3f}"
                     f"{io['fr@0.08'] * 100:>7.1f}%{io['auc@0.1']:>8.3f}{io['fr@0.1'] * 100:>7.1f}%"
                     f"{s['ms_per_face']:>9.1f}")
    return "\n".join(lines)


def parts_table(rows: Sequence[tuple[Sequence[str], dict]], lead: Sequence[str]) -> str:
    """A markdown table of errors by part (`aggregate_images`' "parts", or any dict of
    `face_errors`' part keys): each row's `lead` cells, then its parts in % in the first row's
    order; a part key "part:right_eye" heads its column "right eye", "jaw:along" stays as it is."""
    keys = list(rows[0][1])
    head = [*lead, *(k.split(":", 1)[1].replace("_", " ") if k.startswith("part:") else k for k in keys)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for cells, parts in rows:
        lines.append("| " + " | ".join([*cells, *(f"{parts.get(k, float('nan')) * 100:.2f}" for k in keys)]) + " |")
    return "\n".join(lines)


def jsonable(x):
    """JSON-safe copy: dataclasses to dicts, numpy to Python, NaN/inf to None."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if hasattr(x, "__dataclass_fields__"):
        return jsonable(asdict(x))
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    return x

