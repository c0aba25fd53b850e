"""Turn a training run's best checkpoint into the shipped model files.

    python scripts/ship_model.py train/checkpoints/rt-sep-112-kd/best.pt --name rt-sep-112-kd

writes tracker/models/<name>.pt (fp16 weights for the torch backends) and tracker/models/<name>.onnx
(the same fp16 weights, computed in float32: `export_onnx(fp16_weights=True)`; with the ModelInfo
metadata, checked against torch with onnxruntime). `--fp32-weights` keeps the ONNX file's weights
unrounded (twice the file).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tracker.core.modelfile import MODELS_DIR, ModelInfo, load_torch  # noqa: E402
from tracker.engines.export import export_onnx, save_shipped  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--name", required=True, help="the bundled name (tracker/models/NAME.onnx, .pt)")
    ap.add_argument("--out-dir", type=Path, default=MODELS_DIR)
    ap.add_argument("--fp32-weights", action="store_true", help="unrounded weights in the .onnx")
    a = ap.parse_args(argv)
    net, info = load_torch(a.checkpoint)
    info = ModelInfo(a.name, info.model, info.codec, info.scheme, info.crop_ratio)
    a.out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = a.out_dir / f"{a.name}.onnx"
    diff = export_onnx(net, info, onnx_path, fp16_weights=not a.fp32_weights)
    save_shipped(net, info, a.out_dir / f"{a.name}.pt")
    print(json.dumps({"onnx": str(onnx_path), "max_abs_diff_vs_torch": diff,
                      "onnx_bytes": onnx_path.stat().st_size}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
