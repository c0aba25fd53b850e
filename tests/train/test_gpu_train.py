"""scripts/gpu_train.py end to end on the CPU, on a tiny budget: pack a few fixture faces, train
a tiny teacher for seconds, distil a tiny student, bring the teacher back in small pieces,
reassemble them into a checkpoint that `load_torch` and `scripts/ship_model.py` accept."""
import json
import subprocess
import sys
from fnmatch import fnmatch
from pathlib import Path

import pytest
import torch

from tracker.core.modelfile import load_torch
from train.cache import build
from train.sprint import ROOT, SprintConfig

from .conftest import FIXTURES

SCRIPT = ROOT / "scripts" / "gpu_train.py"
SOURCES = [("300w_lfpw", "images", "stills", True), ("videos", "videos", ".", False)]
TEACHER = {"stacks": 2, "width": 16, "depth": 2, "input_hw": [64, 64], "heatmap_hw": [16, 16], "stem_width": 8}
STUDENT = {"stacks": 1, "width": 8, "depth": 2, "input_hw": [32, 32], "heatmap_hw": [8, 8], "stem_width": 8}


def _run(*args: str) -> str:
    """The script as the GPU machine runs it: a process of its own, from the repository root."""
    done = subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
def test_pack_train_distil_pieces_reassemble_load(tmp_path):
    cache = tmp_path / "crops.npz"
    build(FIXTURES, cache, video_every=24, side=120, sources=SOURCES)  # canonical crop 80 px
    pack = tmp_path / "pack"
    summary = json.loads(_run("pack", "--from-cache", str(cache), "--out", str(pack), "--side", "80",
                              "--margin", "1.25", "--max-mb", "0.2"))
    assert summary["human_faces"] == 7 and summary["teacher_faces"] == 3
    assert summary["pack_mib"] <= 0.2 and summary["side"] == 80

    out = tmp_path / "out"
    log = _run("train", "--pack", str(pack), "--out", str(out), "--minutes", "0.04", "--distil-minutes", "0.03",
               "--teacher-model", json.dumps(TEACHER), "--student-model", json.dumps(STUDENT),
               "--student-init", "none", "--batch", "4", "--student-batch", "8", "--eval-every", "1",
               "--piece-mb", "0.1", "--val-fraction", "0.3", "--deadline-minutes", "3")
    files = sorted(p.name for p in out.iterdir())
    assert len(files) <= 8 and {"config.json", "metrics.json", "student.pt", "teacher.part0.pt"} <= set(files)
    pieces = sorted(out.glob("teacher.part*.pt"))
    assert len(pieces) >= 2 and all(p.stat().st_size < 0.1 * 2**20 for p in pieces)
    metrics = json.loads((out / "metrics.json").read_text())
    for phase in ("teacher", "student"):
        rows = metrics[phase]
        assert rows and rows[-1]["steps"] >= 1 and 0 < rows[-1]["val_nme"] < 10, rows
    assert abs(metrics["teacher_fp16"]["val_nme"] - metrics["teacher"][-1]["val_nme"]) < 0.01
    # the student kept is the best validated (its start included); the teacher taught it only
    # if it validated better than that start
    kept = metrics["student_kept"]["val_nme"]
    assert kept <= min([metrics["student_start"]["val_nme"]] + [r["val_nme"] for r in metrics["student"]])
    assert metrics["distil_teacher_weight"] == float(
        metrics["teacher_fp16"]["val_nme"] < metrics["student_start"]["val_nme"])
    assert metrics["val_faces"] == 2 and metrics["pack"]["faces"] == 10
    assert json.loads((out / "config.json").read_text())["siamese"] is True
    assert '"val_nme"' in log

    best = tmp_path / "fan2-tiny" / "best.pt"
    info = json.loads(_run("reassemble", str(out), "-o", str(best)))
    assert info["pieces"] == [p.name for p in pieces]
    net, model_info = load_torch(best)
    assert model_info.model.input_hw == (64, 64) and model_info.model.stacks == 2
    student, student_info = load_torch(out / "student.pt")
    assert student_info.model.input_hw == (32, 32)
    assert torch.load(out / "student.pt", weights_only=True)["best"] == kept

    pytest.importorskip("onnxruntime")
    shipped = json.loads(_run_ship(best, tmp_path / "models"))
    assert Path(shipped["onnx"]).is_file() and shipped["max_abs_diff_vs_torch"] < 1e-3


def _run_ship(checkpoint: Path, out_dir: Path) -> str:
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "ship_model.py"), str(checkpoint),
                           "--name", "fan2-tiny", "--out-dir", str(out_dir)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def test_the_device_command_in_the_docstring_uses_only_the_tree():
    """The documented call carries the pack, runs python3 from the repository root, and the
    train step reads nothing from ../shared."""
    doc = SCRIPT.read_text()
    assert 'carry=[".gpu_pack"]' in doc and "timeout_s=600" in doc and "python3 scripts/gpu_train.py train" in doc
    assert "/.gpu_pack/" in (ROOT / ".gitignore").read_text().split()
    assert (ROOT / SprintConfig().student_init).is_file()  # the student's warm start is in the tree
    cfg = SprintConfig()
    assert cfg.minutes + cfg.distil_minutes + 0.5 < cfg.deadline_minutes < 10


def test_the_tree_leaves_the_pack_room_for_every_human_face():
    """What travels to the GPU machine is the working tree plus the pack, 64 MiB in all: a tree
    that grows past its share (bundled models, committed training weights) silently costs the
    paper model its human training faces. Tracked files only, as on a clean checkout; an
    unfinished run's `last.pt` under train/checkpoints is left out: it is committed only until
    the run ends (README, "Runs longer than one sitting"), and costs the pack as much meanwhile."""
    from scripts.gpu_train import HUMAN_PACK, RESERVE, TRAVEL_LIMIT, UNFINISHED_RUNS

    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    names = [n for n in out.decode().split("\0") if n and not fnmatch(n, UNFINISHED_RUNS)]
    tree = sum((ROOT / n).stat().st_size for n in names if (ROOT / n).is_file())
    assert tree + RESERVE + HUMAN_PACK <= TRAVEL_LIMIT, f"the tracked tree takes {tree / 2**20:.1f} MiB"


def test_pack_names_the_unfinished_runs_that_take_its_room(tmp_path, monkeypatch, capsys):
    """A tree too full for the pack: the warning names each unfinished run's `last.pt` to move
    out while the GPU runs (and with under 1 MiB left, nothing is packed)."""
    from scripts import gpu_train

    (tmp_path / "train/checkpoints/rt-x").mkdir(parents=True)
    (tmp_path / "train/checkpoints/rt-x/last.pt").write_bytes(b"")
    monkeypatch.setattr(gpu_train, "ROOT", tmp_path)
    monkeypatch.setattr(gpu_train, "travelling_bytes",
                        lambda root, leave_out=None: gpu_train.TRAVEL_LIMIT - gpu_train.RESERVE - 2**19)
    assert gpu_train.main(["pack", "--out", str(tmp_path / "pack")]) == 2
    err = capsys.readouterr().err
    assert "(28.2 MiB); move train/checkpoints/rt-x/last.pt (unfinished runs) out of the tree" in err
    assert "error: the working tree takes" in err and not (tmp_path / "pack").exists()
