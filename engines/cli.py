"""`engines`: export models to ONNX, build TensorRT engines, benchmark the backends.

    engines export [--checkpoint runs/rt-m/best.pt] -o model.onnx
    engines build model.onnx [--fp16 | --no-fp16] [--int8 --calib DIR] [--max-batch 32]
    engines bench [--model model.onnx] [--backend onnxruntime torch torch-cuda tensorrt]
                  [--batches 1 8 32] [--precision fp32 fp16]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from tracker.engines.bench import RESULTS_DIR
from tracker.engines.registry import BACKENDS

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


class UserError(Exception):
    """A problem with the command's input, reported without a traceback."""


def cmd_export(a: argparse.Namespace) -> int:
    from tracker.core.modelfile import ModelInfo, default_model_path, load_torch
    from tracker.engines.export import export_onnx

    ckpt = a.checkpoint if a.checkpoint is not None else default_model_path(".pt")
    net, info = load_torch(ckpt)
    if a.name:
        info = ModelInfo(a.name, info.model, info.codec, info.scheme, info.crop_ratio)
    diff = export_onnx(net, info, a.output, opset=a.opset, fp16_weights=a.fp16_weights)
    print(json.dumps({"checkpoint": str(ckpt), "onnx": str(a.output), "model": info.name,
                      "max_abs_diff_vs_torch": diff}))
    return 0


def calibration_crops(folder: Path, info) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB face crops from the images of `folder`: an image with a .pts
    beside it is cropped around its landmarks as in training, any other is taken to be a face
    crop already and resized to the network's input size."""
    import cv2

    from tracker.core.datasets import read_image
    from tracker.core.geometry import landmarks_crop_transform, warp
    from tracker.core.pts import read_pts

    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder of calibration images")
    h, w = info.model.input_hw
    crops = []
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        img = read_image(p)
        pts = p.with_suffix(".pts")
        if pts.is_file():
            crops.append(warp(img, landmarks_crop_transform(read_pts(pts), (h, w), info.crop_ratio), (h, w)))
        else:
            crops.append(cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA))
    if not crops:
        raise UserError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) to calibrate with")
    return np.stack(crops)


def cmd_build(a: argparse.Namespace) -> int:
    from tracker.core.modelfile import read_onnx_info
    from tracker.engines.tensorrt_build import build_engine

    if a.int8 != (a.calib is not None):
        raise UserError("--int8 and --calib DIR go together (INT8 needs face crops to calibrate)")
    crops = calibration_crops(a.calib, read_onnx_info(a.model)) if a.int8 else None
    path = build_engine(a.model, a.max_batch, fp16=a.fp16, int8_calibration_crops=crops,
                        cache_dir=a.cache_dir, verbose=a.verbose)
    print(json.dumps({"onnx": str(a.model), "engine": str(path), "bytes": path.stat().st_size}))
    return 0


def cmd_bench(a: argparse.Namespace) -> int:
    from tracker.engines.bench import BenchConfig, run
    from tracker.engines.registry import resolve_model

    cfg = BenchConfig(resolve_model(a.model, ".onnx"), tuple(a.backend), tuple(a.batches),
                      tuple(a.precision), a.iters, a.warmup, a.out_dir)
    run(cfg)
    return 0


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="engines", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("export", help="torch checkpoint -> ONNX with the model's metadata")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="a training run's best.pt/last.pt or a shipped .pt (default: the bundled model)")
    p.add_argument("-o", "--output", type=Path, required=True, help="the .onnx file to write")
    p.add_argument("--name", default=None, help="model name stored in the metadata")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--fp16-weights", action="store_true",
                   help="store the weights rounded to fp16, as the shipped .pt has them (half the "
                        "file; the network still computes in float32)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("build", help="ONNX -> TensorRT engine, cached where the tensorrt backend "
                       "looks for it (the backend builds none itself)")
    p.add_argument("model", type=Path, help="an .onnx written by `engines export`")
    p.add_argument("--fp16", action=argparse.BooleanOptionalAction, default=True,
                   help="FP16 kernels (default on)")
    p.add_argument("--int8", action="store_true", help="INT8 with entropy calibration (needs --calib)")
    p.add_argument("--calib", type=Path, default=None,
                   help="folder of face images (with .pts beside them) or face crops")
    p.add_argument("--max-batch", type=int, default=32)
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="engine cache (default $TRACKER_ENGINE_CACHE or ~/.cache/subpixel-tracker/engines)")
    p.add_argument("--verbose", action="store_true", help="TensorRT's builder log")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("bench", help="faces per second of the backends")
    p.add_argument("--model", type=Path, default=None, help="the .onnx (with its .pt beside it); "
                   "default: the bundled model")
    p.add_argument("--backend", nargs="+", choices=BACKENDS, default=["onnxruntime"])
    p.add_argument("--batches", nargs="+", type=int, default=[1, 8, 32])
    p.add_argument("--precision", nargs="+", choices=("fp32", "fp16"), default=["fp32", "fp16"],
                   help="for the GPU backends")
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    p.set_defaults(func=cmd_bench)
    return ap


def main(argv: list[str] | None = None) -> int:
    from tracker.core.modelfile import ModelFileError
    from tracker.engines.backend import BackendUnavailable

    a = parser().parse_args(argv)
    try:
        return a.func(a)
    except (UserError, ModelFileError, BackendUnavailable, ValueError, FileNotFoundError) as e:
        print(f"engines {a.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
