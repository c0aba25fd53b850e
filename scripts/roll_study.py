"""Faces at every roll: the labelled still photos (tests/fixtures/stills and photos_multi, 11
faces on 8 photos) turned about their centre by 0 to 345 degrees, each frame tracked as a photo
(every frame a cut), with `TrackerConfig.turned_faces` on and off (`max_faces` 10: the group
photo has more faces than its 4 labelled ones, which the default cap of 4 would confound).

    python scripts/roll_study.py [--step 15]

Per angle: labelled faces fitted right (NME under 8 % of the inter-ocular distance, the failure
threshold), fitted wrong (a face returned on it, its points elsewhere: upside down, say), and
missed; returned faces on no labelled face (the group photo's unlabelled faces among them); the
mean NME of the right ones. Writes docs/results/roll_study.{json,md,png}.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.machine import cpu_name  # noqa: E402
from tracker.core.datasets import faces_by_image, image_folder, read_image  # noqa: E402
from tracker.evaluation.footage import score_tracks, stack_labels  # noqa: E402

PHOTOS = [ROOT / "tests" / "fixtures" / "stills", ROOT / "tests" / "fixtures" / "photos_multi"]
RESULTS = ROOT / "docs" / "results"
FAIL = 0.08


def turned(image: np.ndarray, faces: list[np.ndarray], degrees: float) -> tuple[np.ndarray, list[np.ndarray]]:
    """`image` turned counter-clockwise on screen by `degrees` about its centre, on a grey
    canvas that holds all of it, and its faces' points moved with it."""
    import cv2

    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), degrees, 1.0)
    c, s = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(round(h * s + w * c)), int(round(h * c + w * s))
    m[:, 2] += [(nw - 1) / 2 - (w - 1) / 2, (nh - 1) / 2 - (h - 1) / 2]
    out = cv2.warpAffine(image, m, (nw, nh), flags=cv2.INTER_LINEAR, borderValue=(90, 90, 90))
    return out, [f @ m[:, :2].T + m[:, 2] for f in faces]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--step", type=int, default=15, help="degrees between angles (default 15)")
    a = ap.parse_args()
    from tqdm import tqdm

    from tracker.runtime.config import TrackerConfig
    from tracker.runtime.tracker import Tracker

    photos = sorted(faces_by_image(rec for root in PHOTOS for rec in image_folder(root)).items())
    images = [(read_image(p), faces) for p, faces in photos]
    angles = list(range(0, 360, a.step))
    rows: dict[str, list[dict]] = {}
    for on in (True, False):
        name = "turned_faces on (default)" if on else "turned_faces off"
        rows[name] = []
        with Tracker(TrackerConfig(tracking=False, turned_faces=on, max_faces=10)) as t:
            for angle in tqdm(angles, desc=name, unit="angle"):
                frames, labels = zip(*(turned(img, faces, angle) for img, faces in images))
                results = [t.process(f, i) for i, f in enumerate(frames)]
                s = score_tracks([r.faces for r in results], stack_labels(labels))
                e = s["nme"][np.isfinite(s["nme"])]
                right = e[e < FAIL]
                rows[name].append({"angle": angle, "faces": int(e.size), "right": int(right.size),
                                   "wrong": int(e.size - right.size - s["missed"]),
                                   "missed": int(s["missed"]), "extra": int(s["extra"]),
                                   "mean_nme_right": float(right.mean()) if right.size else None})
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {"machine": cpu_name(), "photos": [str(p.relative_to(ROOT)) for p, _ in photos], "rows": rows}
    (RESULTS / "roll_study.json").write_text(json.dumps(data, indent=1))
    names = list(rows)
    lines = ["# Faces at every roll", "",
             "`python scripts/roll_study.py`: the 11 labelled faces of tests/fixtures/stills and "
             "photos_multi turned about each photo's centre, tracked as photos; right = NME under "
             f"{100 * FAIL:.0f} %; machine: {data['machine']}.", "",
             "| degrees | " + " | ".join(f"right, wrong, missed, extra ({n}) | mean NME % of the right ({n})"
                                         for n in names) + " |",
             "|---:|" + "---:|---:|" * len(names)]
    for i, angle in enumerate(angles):
        cells = []
        for n in names:
            r = rows[n][i]
            mean = "" if r["mean_nme_right"] is None else f"{100 * r['mean_nme_right']:.2f}"
            cells += [f"{r['right']}, {r['wrong']}, {r['missed']}, {r['extra']}", mean]
        lines.append(f"| {angle} | " + " | ".join(cells) + " |")
    (RESULTS / "roll_study.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot(angles, rows, sum(len(f) for _, f in images), RESULTS / "roll_study.png")


def plot(angles: list[int], rows: dict[str, list[dict]], n_faces: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    for name, style in zip(rows, ("-o", "--s")):
        ax.plot(angles, [r["right"] for r in rows[name]], style, label=name, ms=4)
    ax.set(xlabel="roll of the photo (degrees)", ylabel=f"faces fitted right (of {n_faces})",
           xticks=range(0, 361, 45), ylim=(-0.5, n_faces + 0.5))
    ax.grid(alpha=0.3)
    ax.legend(loc="center")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
