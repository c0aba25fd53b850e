"""scripts/training_curves.py: hours and validation NME over a lineage of warm-started runs, read
from the logs train.loop writes."""
from __future__ import annotations

import json

import pytest

from scripts import training_curves as tc

HEADER = "epoch,lr,loss,faces_per_s,val_nme,val_median,val_auc@0.08,val_fr@0.08,val_auc@0.10,val_fr@0.10\n"


def _run(folder, rows, faces=3600, stem=None, lrs=None):
    folder.mkdir(parents=True, exist_ok=True)
    metrics = folder / (f"{stem}_metrics.csv" if stem else "metrics.csv")
    (folder / (f"{stem}_config.json" if stem else "config.json")).write_text(json.dumps({"samples_per_epoch": faces}))
    lrs = lrs or [0.001] * len(rows)
    metrics.write_text(HEADER + "".join(f"{i + 1},{lr},1.0,{fps},{nme},{nme},0,0,0,0\n"
                                        for i, ((fps, nme), lr) in enumerate(zip(rows, lrs))))
    return metrics


def test_hours_accumulate_over_the_runs_in_order(tmp_path):
    a = tmp_path / "a"
    _run(a, [(1.0, 0.05), (1.0, 0.04)])                                     # 1 h an epoch
    b = _run(tmp_path / "stages", [(2.0, 0.039), (2.0, 0.035), (2.0, 0.036)], stem="stage2",  # 0.5 h
             lrs=[1e-3, 1e-4, 1e-5])
    c = tc.lineage_curve([tc.read_run(a), tc.read_run(b)])
    assert c["hours"] == pytest.approx([1.0, 2.0, 2.5, 3.0, 3.5])
    assert c["val_nme"] == [0.05, 0.04, 0.039, 0.035, 0.036]
    assert c["total_hours"] == pytest.approx(3.5) and c["epochs"] == 5 and c["faces_seen"] == 5 * 3600
    assert c["best_last_run"] == {"epoch": 2, "val_nme": 0.035, "val_median": 0.035}
    # settled: the last run's epochs after its first rate drop (both drops), not the first run's
    assert c["settled_last_run"] == pytest.approx({"epochs": 2, "mean": 0.0355, "min": 0.035, "max": 0.036})


def test_main_writes_table_plot_and_json(tmp_path):
    _run(tmp_path / "r", [(1.0, 0.05), (2.0, 0.04)])
    out = tmp_path / "out"
    assert tc.main(["--lineage", f"m={tmp_path / 'r'}", "--out", str(out)]) == 0
    assert "| m | 1 | 2 | 7 | 1.5 | 4.00 | 4.00 | no rate drop |" in (out / "training_curves.md").read_text()
    assert (out / "training_curves.png").stat().st_size > 1000
    assert json.loads((out / "training_curves.json").read_text())["curves"]["m"]["total_hours"] == pytest.approx(1.5)


def test_a_missing_run_is_named(tmp_path, capsys):
    assert tc.main(["--lineage", f"m={tmp_path / 'nowhere'}", "--out", str(tmp_path)]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_every_bundled_model_has_its_lineage_in_the_tree():
    """The runs behind every bundled model stay committed (config and log), so the model card's
    training hours can be recomputed."""
    from tracker.core.modelfile import bundled_models

    assert {p.stem for p in bundled_models()} <= set(tc.LINEAGES)
    for name, runs in tc.LINEAGES.items():
        for run in runs:
            metrics, config = tc.run_files(run)
            assert metrics.is_file() and config.is_file(), (name, run)
