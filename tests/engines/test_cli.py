"""`engines` CLI, in-process: export prints the parity figure; user errors are one line on
stderr and exit code 2, never a traceback."""
import json

import numpy as np
import pytest

from tests.engines.heatmaps import FIXTURES
from tracker.core.modelfile import read_onnx_info
from tracker.engines.cli import calibration_crops, main


def test_export_from_a_shipped_checkpoint(tiny_model, tmp_path, capsys):
    _, pt, _, info = tiny_model
    out = tmp_path / "m.onnx"
    assert main(["export", "--checkpoint", str(pt), "-o", str(out), "--name", "tiny2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["max_abs_diff_vs_torch"] < 1e-4 and report["onnx"] == str(out)
    assert read_onnx_info(out).name == "tiny2" and read_onnx_info(out).model == info.model


@pytest.mark.parametrize("argv,match", [
    (["export", "--checkpoint", "nope.pt", "-o", "x.onnx"], "nope.pt: no such model file"),
    (["build", "nope.onnx"], "nope.onnx: no such model file"),
    (["bench", "--model", "nope.onnx"], "nope.onnx: no such model file"),
])
def test_user_errors_are_one_line(argv, match, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_int8_needs_calibration_images(tiny_model, capsys):
    assert main(["build", str(tiny_model[0]), "--int8"]) == 2
    assert "--calib" in capsys.readouterr().err


def test_calibration_crops_from_labelled_stills(tiny_model, tmp_path):
    info = tiny_model[3]
    crops = calibration_crops(FIXTURES / "stills", info)
    assert crops.shape == (7, *info.model.input_hw, 3) and crops.dtype == np.uint8
    assert crops.std() > 10  # faces, not blank borders
    from tracker.engines.cli import UserError

    with pytest.raises(UserError, match="no images"):
        calibration_crops(tmp_path, info)


def test_bench_writes_json(tiny_model, tmp_path, capsys):
    onnx_path = tiny_model[0]
    assert main(["bench", "--model", str(onnx_path), "--backend", "onnxruntime", "torch",
                 "--batches", "1", "3", "--iters", "2", "--warmup", "1", "--out-dir", str(tmp_path)]) == 0
    files = list(tmp_path.glob("bench_engines_*.json"))
    assert len(files) == 1
    res = json.loads(files[0].read_text())
    runs = {r["backend"]: r for r in res["runs"]}
    assert set(runs) == {"onnxruntime", "torch"}
    for r in runs.values():
        assert [row["batch"] for row in r["rows"]] == [1, 3]
        assert all(row["faces_per_s"] > 0 and row["ms_per_face"] > 0 for row in r["rows"])
