"""eval-300vw through the batch machinery (`--batch`, or Ray with --workers/--address): the
same scores as the in-process run, landmarks kept (and reused) under OUT/landmarks."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from tracker.cli import main

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def test_eval_300vw_through_the_batch_scores_what_the_in_process_run_scores(tmp_path, capsys):
    root = tmp_path / "clips"
    shutil.copytree(FIXTURES / "feat_single", root / "feat_single")  # a video clip
    shutil.copytree(FIXTURES / "300vw_sample" / "001", root / "001")  # an imgs/ clip
    results = {}
    for mode, extra in (("inline", []), ("batch", ["--batch"])):
        out = tmp_path / mode
        assert main(["eval-300vw", str(root), "--out", str(out), "--quiet", *extra]) == 0
        results[mode] = json.loads((out / "results.json").read_text())
    a, b = results["inline"], results["batch"]
    assert a["counts"]["frames_scored"] == b["counts"]["frames_scored"] == 72 + 2
    assert a["videos"].keys() == b["videos"].keys()
    for clip, va in a["videos"].items():  # per clip: the same NMEs (JSONL keeps 4 decimals)
        vb = b["videos"][clip]
        assert va["frames"] == vb["frames"] and va["missed"] == vb["missed"]
        for points in ("49", "68"):
            assert abs(va[points]["mean"] - vb[points]["mean"]) < 1e-5
    assert len(list((tmp_path / "batch" / "landmarks").rglob("DONE.json"))) == 1  # the video clip
    # a rerun reuses the landmarks the batch published
    assert main(["eval-300vw", str(root), "--out", str(tmp_path / "batch"), "--batch", "--quiet"]) == 0
    manifest = (tmp_path / "batch" / "landmarks" / "manifest.jsonl").read_text().splitlines()
    assert [json.loads(line)["status"] for line in manifest] == ["skipped"]  # the manifest is per run


def test_max_frames_does_not_combine_with_the_batch(tmp_path, capsys):
    assert main(["eval-300vw", str(FIXTURES / "feat_single"), "--out", str(tmp_path), "--batch",
                 "--max-frames", "5"]) == 2
    assert "--max-frames" in capsys.readouterr().err
