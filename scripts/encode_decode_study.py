"""Encode/decode study (paper Fig. 3): how much accuracy does the heatmap representation itself
lose, before any network is involved?

Every ground-truth face is cropped from its landmarks' box
(`tracker.core.geometry.landmarks_crop_transform`) to a network input of 256x256 (heatmaps 64x64) or
128x128 (heatmaps 32x32), so the heatmap stride is 4 in both cases. Its landmarks are encoded into
heatmaps and decoded back with `tracker.core.codec.HeatmapCodec` (sigma 2, tau 10, window 5):

- the baselines: Gaussians centred on a quantised position (floor or round) and decoded with
  argmax or argmax + 0.25 px shift; continuous Gaussians decoded with argmax, argmax + shift or
  a global soft-argmax;
- the paper's pair: continuous Gaussians decoded with a local 5x5 soft-argmax.

The decoded points are mapped back to the image and compared with the labels they came from
(inter-ocular NME, %). Only the .pts files are read, never the images.

    nice -n 10 python scripts/encode_decode_study.py [DATA_ROOT] [--video-every N]

About 4 CPU-minutes for the ~39k faces (every labelled video frame included).

DATA_ROOT defaults to ../shared/data next to the repository. Writes docs/results/encode_decode.md
and docs/results/encode_decode.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.machine import cpu_name  # noqa: E402
from tracker.core.codec import HeatmapCodec  # noqa: E402
from tracker.core.datasets import DatasetError, image_folder, video_clip  # noqa: E402
from tracker.core.geometry import apply, invert, landmarks_crop_transform  # noqa: E402
from tracker.core.metrics import nme  # noqa: E402
from tracker.core.pts import PtsError  # noqa: E402

#: (label, encoding, decoder); the last one is the paper's.
METHODS = [
    ("floor + argmax", "floor", "argmax"),
    ("round + argmax", "round", "argmax"),
    ("round + argmax shift", "round", "argmax_shift"),
    ("continuous + argmax", "continuous", "argmax"),
    ("continuous + argmax shift", "continuous", "argmax_shift"),
    ("continuous + global soft-argmax", "continuous", "soft_argmax"),
    ("continuous + local soft-argmax (ours)", "continuous", "local_soft_argmax"),
]
#: (network input, heatmap): stride 4 both.
SIZES = [((256, 256), (64, 64)), ((128, 128), (32, 32))]
SIGMA, WINDOW, TAU = 2.0, 5, 10.0
IMAGE_SETS = ["stills", "300w/lfpw_trainset", "300w/helen_trainset", "300w/afw",
              "300w/helen_testset", "photos", "photos_lfw", "photos_utkface", "photos_misc"]


def label_sets(root: Path, video_every: int = 1) -> dict[str, np.ndarray]:
    """{name: (N, 68, 2) 0-based points} for every label set under `root` that exists."""
    sets: dict[str, np.ndarray] = {}
    videos = root / "videos"
    if videos.is_dir():
        xy = []
        for clip in sorted(p for p in videos.iterdir() if (p / "annot").is_dir()):
            _, labels = video_clip(clip)
            xy += [labels[f] for f in sorted(labels)][::video_every]
        sets["videos"] = np.stack(xy)
    for name in ["300vw_sample"]:
        if (root / name).is_dir():
            sets[name] = np.stack([lab for clip in sorted((root / name).iterdir())
                                   if (clip / "annot").is_dir()
                                   for lab in video_clip(clip)[1].values()])
    for name in IMAGE_SETS:
        if (root / name).is_dir():
            sets[name] = np.stack([r.points for r in image_folder(root / name)])
    return sets


def study(xy: np.ndarray, input_hw: tuple[int, int], heatmap_hw: tuple[int, int],
          chunk: int = 4) -> dict[str, dict[str, np.ndarray]]:
    """Per-face inter-ocular NME and mean point error in heatmap pixels for every method.

    xy: (N, K, 2) image points. Returns {method: {"nme": (N,), "hm_px": (N,)}}.
    """
    n = len(xy)
    crops = np.stack([landmarks_crop_transform(p, input_hw) for p in xy])  # (N, 2, 3)
    xy_in = apply(crops, xy)  # (N, K, 2) network-input pixels
    back = invert(crops)
    stride = input_hw[0] / heatmap_hw[0]
    out = {label: {"nme": np.empty(n), "hm_px": np.empty(n)} for label, _, _ in METHODS}
    for encoding in dict.fromkeys(e for _, e, _ in METHODS):
        methods = [(label, HeatmapCodec(input_hw, heatmap_hw, SIGMA, encoding, dec, WINDOW, TAU))
                   for label, e, dec in METHODS if e == encoding]
        for s in range(0, n, chunk):
            sl = slice(s, min(s + chunk, n))
            hm = methods[0][1].encode(xy_in[sl])  # (b, K, h, w), the same for every decoder
            for label, codec in methods:
                pred_in, _ = codec.decode(hm)  # (b, K, 2) input pixels
                pred = apply(back[sl], pred_in)  # (b, K, 2) image pixels
                out[label]["nme"][sl] = nme(pred, xy[sl])
                out[label]["hm_px"][sl] = np.linalg.norm(pred_in - xy_in[sl], axis=-1).mean(-1) / stride
    return out


def _ordinal(n: int) -> str:
    return f"{n}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10 if n % 100 not in (11, 12, 13) else 0, 'th')}"


def _size_name(input_hw, heatmap_hw) -> str:
    return f"{heatmap_hw[0]}x{heatmap_hw[1]} (input {input_hw[0]}x{input_hw[1]})"


def write_markdown(path: Path, results: dict, counts: dict[str, int], notes: list[str]) -> None:
    short = {label: label.replace("continuous", "cont.").replace(" (ours)", " **(ours)**")
             for label, _, _ in METHODS}
    lines = ["# Encode/decode study (paper Fig. 3)", "",
             "Ground-truth landmarks encoded into heatmaps and decoded back, no network involved: the "
             "error that the representation alone costs. Faces cropped from their landmarks' box "
             f"(crop ratio 256/220), Gaussian sigma {SIGMA}, softmax tau {TAU}, local window "
             f"{WINDOW}x{WINDOW}, heatmap stride 4. Mean inter-ocular NME in % (outer eye corners).",
             "", "Produced by `scripts/encode_decode_study.py`.", ""]
    lines += [f"- {n}" for n in notes] + [""]
    for size, per_set in results.items():
        lines += [f"## Heatmap {size}", "",
                  "| data | faces | " + " | ".join(short[m] for m, _, _ in METHODS) + " |",
                  "|---|---:|" + "---:|" * len(METHODS)]
        for name, r in per_set.items():
            cells = [f"{r[m]['nme_mean'] * 100:.3f}" for m, _, _ in METHODS]
            label = f"**{name}**" if name == "all faces" else name
            lines.append(f"| {label} | {counts[name]:,} | " + " | ".join(cells) + " |")
        r = per_set["all faces"]
        lines.append("| *mean error, heatmap px* | | "
                     + " | ".join(f"*{r[m]['hm_px_mean']:.4f}*" for m, _, _ in METHODS) + " |")
        lines.append("")
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data_root", nargs="?", default=str(ROOT.parent / "shared" / "data"),
                    help="folder with videos/, stills/, 300w/, photos*/ (default: %(default)s)")
    ap.add_argument("--video-every", type=int, default=1,
                    help="use every N-th labelled video frame (default: all)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "results"), help="output folder")
    args = ap.parse_args(argv)

    root = Path(args.data_root)
    if not root.is_dir():
        print(f"error: {root}: no such data folder", file=sys.stderr)
        return 2
    t0 = time.time()
    load = os.getloadavg()[0]
    try:
        sets = label_sets(root, max(1, args.video_every))
    except (DatasetError, PtsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not sets:
        print(f"error: {root}: no label sets found", file=sys.stderr)
        return 2
    counts = {k: len(v) for k, v in sets.items()}
    counts["all faces"] = sum(counts.values())
    print(f"read {counts['all faces']:,} faces in {time.time() - t0:.1f} s: "
          + ", ".join(f"{k} {v:,}" for k, v in counts.items() if k != "all faces"), flush=True)

    results: dict[str, dict[str, dict]] = {}
    for input_hw, heatmap_hw in SIZES:
        size = _size_name(input_hw, heatmap_hw)
        per_face = {m: {"nme": [], "hm_px": []} for m, _, _ in METHODS}
        results[size] = {}
        for name, xy in sets.items():
            t = time.time()
            r = study(xy, input_hw, heatmap_hw)
            results[size][name] = {m: {"nme_mean": float(v["nme"].mean()),
                                       "nme_median": float(np.median(v["nme"])),
                                       "nme_max": float(v["nme"].max()),
                                       "hm_px_mean": float(v["hm_px"].mean())} for m, v in r.items()}
            for m, v in r.items():
                per_face[m]["nme"].append(v["nme"]), per_face[m]["hm_px"].append(v["hm_px"])
            print(f"{size} {name}: {len(xy):,} faces, {time.time() - t:.1f} s; NME % "
                  + ", ".join(f"{m} {v['nme'].mean() * 100:.3f}" for m, v in r.items()), flush=True)
        results[size]["all faces"] = {
            m: {"nme_mean": float(np.concatenate(v["nme"]).mean()),
                "nme_median": float(np.median(np.concatenate(v["nme"]))),
                "nme_max": float(np.concatenate(v["nme"]).max()),
                "hm_px_mean": float(np.concatenate(v["hm_px"]).mean())} for m, v in per_face.items()}

    seconds = time.time() - t0
    cpu_s = time.process_time()
    notes = [f"Data: `{args.data_root}` ({counts['all faces']:,} faces); videos: "
             + ("every labelled frame of every clip" if args.video_every <= 1
                else f"every {_ordinal(args.video_every)} labelled frame of every clip, "
                     f"{counts.get('videos', 0):,} frames") + ".",
             "Theory for uniformly distributed sub-pixel positions: round + argmax is off by "
             "0.383 heatmap px on average (mean distance to the nearest grid point), floor + argmax "
             "by 0.765 px; the local soft-argmax is bounded by the softmax's sampling bias "
             "(at most 0.0098 px per axis for sigma 2, tau 10).",
             f"Run time {seconds:.0f} s wall, {cpu_s:.0f} s CPU on {cpu_name()} "
             f"({os.cpu_count()} cores; 1-min load average {load:.1f} at the start)."]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "encode_decode.json").write_text(json.dumps({
        "settings": {"sigma": SIGMA, "tau": TAU, "window": WINDOW, "crop": "landmarks box, ratio 256/220",
                     "sizes": [{"input_hw": i, "heatmap_hw": h} for i, h in SIZES],
                     "video_every": args.video_every, "data_root": str(root)},
        "methods": [{"label": m, "encoding": e, "decoder": d} for m, e, d in METHODS],
        "faces": counts, "results": results, "seconds": seconds, "cpu_seconds": cpu_s}, indent=1))
    write_markdown(out / "encode_decode.md", results, counts, notes)
    print(f"wrote {out / 'encode_decode.md'} and .json ({seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
