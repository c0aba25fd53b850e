"""Faces per second of the inference backends, and the CUDA decode kernel's time on a GPU.

    python scripts/bench_engines.py --backend onnxruntime torch            # CPU
    python scripts/bench_engines.py --backend torch-cuda tensorrt          # GPU

The same as `engines bench` (see engines/bench.py for what is measured); writes
docs/results/bench_engines_<device>.json.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tracker.engines.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
