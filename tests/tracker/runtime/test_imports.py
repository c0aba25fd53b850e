"""The runtime's default path (onnxruntime backend) runs without torch or onnx: they cost
start-up time (onnx alone 0.5 s here) and are needed only by the torch backends and export."""
from __future__ import annotations

import subprocess
import sys

from tests.tracker.runtime_fixtures import CLIP


def test_tracking_a_clip_with_the_default_backend_imports_neither_torch_nor_onnx(tmp_path):
    code = (
        "import sys\n"
        "from tracker.cli import main\n"
        f"assert main(['track', {str(CLIP)!r}, '--csv', {str(tmp_path / 'out.csv')!r}, '--quiet']) == 0\n"
        "heavy = sorted(m for m in ('torch', 'onnx') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "HEAVY []" in out.stdout
    assert (tmp_path / "out.csv").read_text().count("\n") == 73  # header + one face per frame
