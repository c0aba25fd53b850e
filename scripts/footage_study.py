"""The tracker on edited footage (tests/fixtures/footage, `scripts/make_footage_fixtures.py`)
and on a folder of unrelated photos (upright; stored turned with EXIF orientation tags, as
phones store them; turned with no tag; small in 12-megapixel frames): faces per frame,
duplicates, id switches, accuracy.

    python scripts/footage_study.py [--name after] [--code-root DIR] [--set key=value ...]

Writes docs/results/footage.{json,md} (rows of earlier runs under other names are kept, so a
run of an older checkout, `--code-root /path/to/old/checkout --name before`, sits beside the
current one). The tracking runs in a subprocess on the code under --code-root (default: this
checkout), with TrackerConfig defaults unless --set changes them; scoring runs here
(`tracker.evaluation.footage.score_tracks`). Labels are the source clips' teacher labels, so
NME measures agreement with them (a few %); what matters here is the comparison between
cases (the rotated clip against the upright one) and the counts.
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.machine import cpu_name  # noqa: E402
from tracker.core.datasets import faces_by_image, image_folder  # noqa: E402
from tracker.evaluation.footage import save_turned, score_tracks, stack_labels  # noqa: E402

FOOTAGE = ROOT / "tests" / "fixtures" / "footage"
PHOTOS = [ROOT / "tests" / "fixtures" / "stills", ROOT / "tests" / "fixtures" / "photos_multi"]
CASES = ["cut", "zoom", "two_faces", "crossing", "rotated", "fast", "upside_down", "roll_full", "portrait"]
RESULTS = ROOT / "docs" / "results"

#: Runs in the subprocess: track each case and each photo, pickle (id, points) per frame.
RUNNER = r"""
import dataclasses, json, pickle, sys
from tracker.runtime.config import TrackerConfig
from tracker.runtime.tracker import Tracker
cases, photos, overrides, out = json.loads(sys.argv[1])
cfg = dataclasses.replace(TrackerConfig(), **overrides)
res = {}
with Tracker(cfg) as t:
    for name, path in cases:
        res[name] = [[(f.id, f.points) for f in r.faces] for r in t.track(path)]
    for name, path in photos:
        res[name] = [[(f.id, f.points) for f in r.faces] for r in t.track(path)]
    t2 = Tracker(dataclasses.replace(cfg, tracking=False))
    res["photos_no_tracking"] = [[(f.id, f.points) for f in r.faces] for r in t2.track(photos[0][1])]
    t2.close()
pickle.dump(res, open(out, "wb"))
"""


class _Face:
    def __init__(self, fid, points):
        self.id, self.points = fid, points


def photo_folder(tmp: Path, stored: str = "upright") -> tuple[Path, np.ndarray]:
    """The labelled still photos in one folder, and their labels (F, N, 68, 2) with NaN
    padding. `stored`: "upright" (a symlink each), "exif" (each stored turned as phones store
    photos, with the EXIF orientation tag that shows it upright), "turned" (each turned, with
    no tag: the faces lie sideways or upside down; quarter, three-quarter and half turns in
    turn) or "large" (each at its own scale in a 4000 x 3000 frame of its own shade, a
    12-megapixel photo whose faces are small); JPEG quality 95."""
    from tracker.core.datasets import read_image

    folder = tmp / f"photos_{stored}"
    folder.mkdir()
    by_image = faces_by_image(rec for root in PHOTOS for rec in image_folder(root))
    names = sorted(by_image, key=lambda p: p.name)
    labels = []
    for i, name in enumerate(names):
        faces = by_image[name]
        if stored == "upright":
            (folder / f"{i:03d}{name.suffix}").symlink_to(name)
            labels.append(faces)
            continue
        if stored == "large":
            image = read_image(name)
            frame = np.full((3000, 4000, 3), (60, 200)[i % 2], np.uint8)  # unlike the last one: a cut
            y, x = (3000 - image.shape[0]) // 2, (4000 - image.shape[1]) // 3
            frame[y:y + image.shape[0], x:x + image.shape[1]] = image
            labels.append(save_turned(folder / f"{i:03d}.jpg", frame, [f + (x, y) for f in faces], 0, False))
            continue
        turns = (1, -1, 2)[i % 3]
        labels.append(save_turned(folder / f"{i:03d}.jpg", read_image(name), faces, turns, stored == "exif"))
    return folder, stack_labels(labels)


def worst(errors: np.ndarray) -> float:
    """The largest NME of a labelled face in `score_tracks`' errors (a missed face counts as
    its `MISSED_NME`, as in the mean; NaN where a frame has fewer faces)."""
    return float(np.nanmax(errors))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--name", default="after", help="row label (default: after)")
    ap.add_argument("--code-root", type=Path, default=ROOT, help="checkout whose tracker runs")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="TrackerConfig overrides (values parsed as JSON)")
    a = ap.parse_args()
    overrides = {k: json.loads(v) for k, v in (s.split("=", 1) for s in a.set)}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        photos, photo_labels = photo_folder(tmp)
        exif, _ = photo_folder(tmp, "exif")
        turned, turned_labels = photo_folder(tmp, "turned")
        large, large_labels = photo_folder(tmp, "large")
        cases = [(c, str(FOOTAGE / c / "vid.mp4")) for c in CASES]
        out = tmp / "out.pkl"
        env = dict(os.environ, PYTHONPATH=str(a.code_root.resolve()))
        folders = [("photos", str(photos)), ("photos_exif", str(exif)), ("photos_turned", str(turned)),
                   ("photos_large", str(large))]
        subprocess.run([sys.executable, "-c", RUNNER, json.dumps([cases, folders, overrides, str(out)])],
                       check=True, env=env, cwd=tmp)
        res = pickle.loads(out.read_bytes())
    rows = {}
    for c in CASES:
        labels = np.load(FOOTAGE / c / "labels.npz")["points"]
        s = score_tracks([[_Face(*f) for f in fr] for fr in res[c]], labels)
        rows[c] = {k: s[k] for k in ("frames", "faces", "mean_nme", "median_nme", "missed", "extra",
                                     "switches", "exact")}
        rows[c]["worst_nme"] = worst(s["nme"])
    for key in ("photos", "photos_no_tracking", "photos_exif", "photos_turned", "photos_large"):
        labels = {"photos_turned": turned_labels, "photos_large": large_labels}.get(key, photo_labels)
        s = score_tracks([[_Face(*f) for f in fr] for fr in res[key]], labels)
        rows[key] = {k: s[k] for k in ("frames", "faces", "mean_nme", "median_nme", "missed", "extra",
                                       "exact")}
        rows[key]["worst_nme"] = worst(s["nme"])
    path = RESULTS / "footage.json"
    data = json.loads(path.read_text()) if path.is_file() else {"runs": {}}
    data["machine"] = cpu_name()
    data["runs"][a.name] = {"overrides": overrides, "code_root": str(a.code_root), "rows": rows}
    path.write_text(json.dumps(data, indent=1))
    lines = ["# Tracking on edited footage", "",
             "`python scripts/footage_study.py` on tests/fixtures/footage "
             "(`scripts/make_footage_fixtures.py`) and on the 11 labelled faces of "
             "tests/fixtures/stills + photos_multi as one folder of unrelated photos; "
             f"machine: {data['machine']}. NME against the source clips' teacher labels "
             "(human labels for the photos); `exact`: frames with exactly the labelled faces; "
             "`extra`: returned faces on no labelled face (duplicates); `switches`: id changes "
             "of a labelled face; `worst`: the largest NME of a labelled face, a missed one "
             "counting 1.0 as in the mean (empty for runs before it was recorded).", "",
             "| run | case | frames | mean NME % | median % | worst % | missed | extra | id switches | exact frames |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, run in data["runs"].items():
        for case, r in run["rows"].items():
            w = f"{100 * r['worst_nme']:.2f}" if "worst_nme" in r else ""
            lines.append(f"| {name} | {case} | {r['frames']} | {100 * r['mean_nme']:.2f} | "
                         f"{100 * r['median_nme']:.2f} | {w} | {r['missed']} | {r['extra']} | "
                         f"{r.get('switches', '')} | {r['exact']} |")
    (RESULTS / "footage.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
