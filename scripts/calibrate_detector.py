"""Fit the BlazeFace -> landmark-extent box mapping of `tracker.runtime.detect` and measure detection
rates of both BlazeFace models.

Data: the human-labelled 300-W TRAINING faces only (lfpw_trainset, helen_trainset, afw; never
helen_testset). For each face the detection that overlaps its landmark box most is paired with
the box of its 68 landmarks; `BoxMapping.fit` takes the median per-axis offsets and size ratios.
The residual is reported as the crop error it causes: the distance between the mapped box's
centre and the landmark box's centre, and the relative error of the square side that
`tracker.core.geometry.crop_transform` uses (max of width and height), both over that side.

Optionally (--videos) also counts detections on every 10th labelled frame of the
teacher-labelled clips (faces smaller in the frame than in the 300-W crops), for choosing the
default model.

    python scripts/calibrate_detector.py [--data /work/shared/data] [--videos]

Writes docs/results/detector_calibration.json and .md; paste the printed constants into
tracker/runtime/detect.py's CALIBRATION.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tracker.core.datasets import image_folder, read_image, video_clip  # noqa: E402
from tracker.core.geometry import points_box  # noqa: E402
from tracker.runtime.detect import BoxMapping, FaceDetector  # noqa: E402

TRAIN_FOLDERS = ("lfpw_trainset", "helen_trainset", "afw")


def iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def crop_errors(mapped: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N,) centre error and (N,) signed side error of mapped boxes, over the target's side."""
    side_t = np.maximum(target[:, 2] - target[:, 0], target[:, 3] - target[:, 1])
    side_m = np.maximum(mapped[:, 2] - mapped[:, 0], mapped[:, 3] - mapped[:, 1])
    ct = (target[:, :2] + target[:, 2:]) / 2
    cm = (mapped[:, :2] + mapped[:, 2:]) / 2
    return np.linalg.norm(cm - ct, axis=1) / side_t, (side_m - side_t) / side_t


def summary(x: np.ndarray) -> dict:
    x = np.asarray(x, np.float64)
    return {"mean": float(x.mean()), "median": float(np.median(x)),
            "p90": float(np.percentile(x, 90)), "max": float(x.max())}


def run_faces(data: Path, models: tuple[str, ...]) -> dict:
    faces = []
    for folder in TRAIN_FOLDERS:
        faces += [(folder, r) for r in image_folder(data / "300w" / folder)]
    print(f"{len(faces)} training faces from {', '.join(TRAIN_FOLDERS)}")
    identity = BoxMapping()
    out = {}
    for model in models:
        det = FaceDetector(model, min_score=0.5, mapping=identity)
        raw, target, folders, found = [], [], [], {f: [0, 0] for f in TRAIN_FOLDERS}
        t0 = time.perf_counter()
        for folder, rec in faces:
            image = read_image(rec.image)
            box = points_box(rec.points)
            dets = det.detect(image)
            found[folder][1] += 1
            best = max(dets, key=lambda d: iou(d.raw_box, box), default=None)
            if best is None or iou(best.raw_box, box) < 0.2:
                continue
            found[folder][0] += 1
            raw.append(best.raw_box)
            target.append(box)
            folders.append(folder)
        dt = time.perf_counter() - t0
        det.close()
        raw, target, folders = np.array(raw), np.array(target), np.array(folders)
        mapping = BoxMapping.fit(raw, target)
        centre, side = crop_errors(mapping.apply(raw), target)
        centre0, side0 = crop_errors(raw, target)
        ious = np.array([iou(m, t) for m, t in zip(mapping.apply(raw), target)])
        per_folder = {f: {"detected": found[f][0], "faces": found[f][1],
                          "rate": found[f][0] / found[f][1],
                          "centre_error_median": float(np.median(centre[folders == f])),
                          "side_error_abs_median": float(np.median(np.abs(side[folders == f])))}
                      for f in TRAIN_FOLDERS}
        n_found = sum(v[0] for v in found.values())
        out[model] = {
            "mapping": mapping.__dict__,
            "detected": n_found, "faces": len(faces), "rate": n_found / len(faces),
            "ms_per_image": 1000 * dt / len(faces),
            "residual": {"centre_error_over_side": summary(centre),
                         "side_error_over_side_abs": summary(np.abs(side)),
                         "side_error_over_side_signed_mean": float(side.mean()),
                         "iou": summary(ious)},
            "unmapped": {"centre_error_over_side": summary(centre0),
                         "side_error_over_side_abs": summary(np.abs(side0))},
            "per_folder": per_folder,
        }
        r = out[model]
        print(f"[{model}] detected {n_found}/{len(faces)} ({100 * r['rate']:.1f} %), "
              f"{r['ms_per_image']:.1f} ms/image")
        print(f"[{model}] mapping {mapping}")
        print(f"[{model}] residual: centre error median {100 * np.median(centre):.1f} % of the "
              f"side (unmapped {100 * np.median(centre0):.1f} %), side error median "
              f"{100 * np.median(np.abs(side)):.1f} % (unmapped {100 * np.median(np.abs(side0)):.1f} %), "
              f"IoU median {np.median(ious):.3f}")
    return out


def run_videos(data: Path, models: tuple[str, ...], step: int = 10) -> dict:
    import av

    clips = sorted(p for p in (data / "videos").iterdir() if (p / "annot").is_dir())
    out = {m: {"detected": 0, "frames": 0, "per_clip": {}} for m in models}
    dets = {m: FaceDetector(m, min_score=0.5) for m in models}
    for clip in clips:
        video, labels = video_clip(clip)
        wanted = set(sorted(labels)[::step])
        counts = {m: [0, 0] for m in models}
        with av.open(str(video)) as c:
            for n, vf in enumerate(c.decode(video=0), 1):
                if n not in wanted:
                    continue
                img = np.ascontiguousarray(vf.to_ndarray(format="rgb24"))
                box = points_box(labels[n])
                for m in models:
                    hit = any(iou(d.box, box) > 0.3 for d in dets[m].detect(img))
                    counts[m][0] += hit
                    counts[m][1] += 1
        for m in models:
            out[m]["detected"] += counts[m][0]
            out[m]["frames"] += counts[m][1]
            out[m]["per_clip"][clip.name] = counts[m]
        print(f"{clip.name:>14}: " + ", ".join(f"{m} {counts[m][0]}/{counts[m][1]}" for m in models))
    for m in models:
        out[m]["rate"] = out[m]["detected"] / max(out[m]["frames"], 1)
        print(f"[{m}] video frames detected {out[m]['detected']}/{out[m]['frames']} "
              f"({100 * out[m]['rate']:.1f} %)")
        dets[m].close()
    return out


def write_report(result: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "detector_calibration.json").write_text(json.dumps(result, indent=1))
    lines = ["# BlazeFace box calibration", "",
             "`python scripts/calibrate_detector.py --videos`: mapping from mediapipe BlazeFace "
             "boxes to the landmark-extent boxes of the 300-W training faces (human labels: "
             "lfpw_trainset, helen_trainset, afw; never helen_testset). Errors are over the crop "
             "side (max of the landmark box's width and height).", "",
             "| model | detected (300-W train) | dx | dy | sx | sy | centre err median / p90 | "
             "side err median / p90 | IoU median | ms/image |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for m, r in result["faces"].items():
        mp, res = r["mapping"], r["residual"]
        lines.append(f"| {m} | {r['detected']}/{r['faces']} ({100 * r['rate']:.1f} %) | "
                     f"{mp['dx']:.4f} | {mp['dy']:.4f} | {mp['sx']:.4f} | {mp['sy']:.4f} | "
                     f"{100 * res['centre_error_over_side']['median']:.1f} % / "
                     f"{100 * res['centre_error_over_side']['p90']:.1f} % | "
                     f"{100 * res['side_error_over_side_abs']['median']:.1f} % / "
                     f"{100 * res['side_error_over_side_abs']['p90']:.1f} % | "
                     f"{res['iou']['median']:.3f} | {r['ms_per_image']:.1f} |")
    if "videos" in result:
        lines += ["", "Detection rate on every 10th labelled frame of the teacher-labelled clips "
                  "(hit: a mapped box with IoU > 0.3 against the labels' box):", "",
                  "| model | frames detected |", "|---|---|"]
        for m, r in result["videos"].items():
            lines.append(f"| {m} | {r['detected']}/{r['frames']} ({100 * r['rate']:.1f} %) |")
    (out_dir / "detector_calibration.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--videos", action="store_true", help="also count detections on the clips")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "results")
    args = ap.parse_args(argv)
    models = ("short", "full")
    result = {"faces": run_faces(args.data, models)}
    if args.videos:
        result["videos"] = run_videos(args.data, models)
    write_report(result, args.out)
    print("CALIBRATION = {")
    for m in models:
        mp = result["faces"][m]["mapping"]
        print(f'    "{m}": BoxMapping({mp["dx"]:.4f}, {mp["dy"]:.4f}, {mp["sx"]:.4f}, {mp["sy"]:.4f}),')
    print("}")
    print(f"wrote {args.out / 'detector_calibration.json'} and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
