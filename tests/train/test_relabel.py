from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tracker.core.landmarks import IBUG68
from tracker.core.metrics import nme
from tracker.core.model_config import ModelConfig
from train.cache import Cache
from train.config import TrainConfig
from train.loop import Trainer
from train.relabel import RelabelMismatch, choose_blend, predict, relabel, relabelled, save, teacher_on

ROOT = Path(__file__).resolve().parents[2]
TINY = ModelConfig(stacks=1, width=16, depth=2, input_hw=(64, 64), heatmap_hw=(16, 16), stem_width=8)


@pytest.fixture
def model_path(tmp_path, fixture_cache):
    cfg = TrainConfig(preset="rt-s", out=str(tmp_path / "run"), epochs=1, samples_per_epoch=8, batch=4,
                      source_weights={"300w_lfpw": 0.5, "videos": 0.5}, human_sources=("300w_lfpw",),
                      threads=1)
    tr = Trainer(cfg, fixture_cache, TINY)
    tr.train_step(tr.train_idx[:4])
    tr._save_last()
    return tmp_path / "run" / "last.pt"


def _mirrored(cache: Cache) -> Cache:
    pts = cache.points[:, list(IBUG68.flip)].copy()
    pts[..., 0] = cache.side - 1 - pts[..., 0]
    return replace(cache, images=np.ascontiguousarray(cache.images[:, :, ::-1]), points=pts)


def test_the_flip_test_makes_predictions_mirror_with_the_face(model_path, fixture_cache):
    """Each prediction averages a crop and its mirror image, so a mirrored face gets exactly the
    mirrored points, whatever the model (here a barely trained one)."""
    idx = np.arange(6)
    got = predict([model_path], fixture_cache, idx)
    mirror = predict([model_path], _mirrored(fixture_cache), idx)[:, list(IBUG68.flip)]
    mirror[..., 0] = fixture_cache.side - 1 - mirror[..., 0]
    np.testing.assert_allclose(mirror, got, atol=2e-3)
    # several models average
    both = predict([model_path, model_path], fixture_cache, idx)
    np.testing.assert_allclose(both, got, atol=1e-5)


def test_predictions_land_on_the_faces_in_cache_crop_pixels(fixture_cache):
    """The bundled model through `predict` (flip test): near the human labels of the stills."""
    idx = np.flatnonzero(fixture_cache.source == 0)
    got = predict([ROOT / "tracker/models/rt-m.pt"], fixture_cache, idx)
    e = nme(got, fixture_cache.points[idx])
    assert e.mean() < 0.035, e  # measured 3.17 %


def test_the_blend_of_two_independent_labellers_is_chosen_when_it_is_best():
    rng = np.random.default_rng(0)
    truth = rng.uniform(20, 100, (200, 68, 2))
    truth[:, 36], truth[:, 45] = [40, 50], [80, 50]  # eye corners 40 px apart
    a, b = truth + rng.normal(0, 1.5, truth.shape), truth + rng.normal(0, 1.5, truth.shape)
    best, scores = choose_blend(a, b, truth)
    assert best == 0.5
    assert scores["0.5"]["val_nme"] < 0.75 * scores["1"]["val_nme"]  # sqrt(1/2) of one labeller's
    worse = truth + rng.normal(0, 4.0, truth.shape)
    assert choose_blend(a, worse, truth)[0] in (0.75, 1.0)


def test_relabelling_replaces_teacher_labels_only_and_refuses_another_cache(model_path, fixture_cache, tmp_path):
    labels = relabel(fixture_cache, [model_path], blend=1.0, human_sources=("300w_lfpw",))
    human = fixture_cache.source == 0
    assert np.array_equal(labels["relabelled"], ~human)
    np.testing.assert_array_equal(labels["points"][human], fixture_cache.points[human])
    ours = predict([model_path], fixture_cache, np.flatnonzero(~human))
    np.testing.assert_allclose(labels["points"][~human], ours, atol=1e-4)
    half = relabel(fixture_cache, [model_path], blend=0.5, human_sources=("300w_lfpw",))
    np.testing.assert_allclose(half["points"][~human], (ours + fixture_cache.points[~human]) / 2, atol=1e-4)

    save(labels, tmp_path / "relabels.npz")
    new = relabelled(fixture_cache, tmp_path / "relabels.npz")
    np.testing.assert_array_equal(new.points, labels["points"])
    assert new.images is fixture_cache.images
    other = replace(fixture_cache, points=fixture_cache.points + 1)
    with pytest.raises(RelabelMismatch, match="another cache"):
        relabelled(other, tmp_path / "relabels.npz")
    with pytest.raises(FileNotFoundError, match="python -m train.relabel"):
        relabelled(fixture_cache, tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="between 0"):
        relabel(fixture_cache, [model_path], blend=1.5)


def test_a_run_trains_on_the_relabelled_points(model_path, fixture_cache, tmp_path):
    labels = relabel(fixture_cache, [model_path], blend=1.0, human_sources=("300w_lfpw",))
    save(labels, tmp_path / "relabels.npz")
    cfg = TrainConfig(preset="rt-s", out=str(tmp_path / "run2"), source_weights={"300w_lfpw": 0.5, "videos": 0.5},
                      human_sources=("300w_lfpw",), labels=str(tmp_path / "relabels.npz"), threads=1)
    tr = Trainer(cfg, fixture_cache, TINY)
    np.testing.assert_array_equal(tr.cache.points, labels["points"])


def test_the_teacher_runs_as_it_labelled_the_data(fixture_cache):
    """dlib on the cache crops of the human-labelled stills: points in cache-crop pixels (0-based
    centres), near the human labels."""
    pytest.importorskip("dlib")
    pytest.importorskip("face_recognition_models")
    idx = np.flatnonzero(fixture_cache.source == 0)
    pts, found = teacher_on(fixture_cache, idx)
    assert found.all()
    e = nme(pts, fixture_cache.points[idx])
    assert np.median(e) < 0.025 and e.mean() < 0.033  # measured 1.97 % and 2.63 %


def test_the_subpixel_teacher_is_closer_to_the_human_labels(fixture_cache):
    """The teacher on the crops upscaled 4 times and mirrored, averaged: points off the pixel
    grid, and nearer the human labels of the stills than its whole-pixel run."""
    pytest.importorskip("dlib")
    pytest.importorskip("face_recognition_models")
    idx = np.flatnonzero(fixture_cache.source == 0)
    plain, _ = teacher_on(fixture_cache, idx)
    fine, found = teacher_on(fixture_cache, idx, subpixel=True)
    assert found.all()
    assert np.abs(fine - np.round(fine)).mean() > 0.2  # measured 0.247 (0.25 off the grid, 0 on it)
    e_plain, e_fine = nme(plain, fixture_cache.points[idx]), nme(fine, fixture_cache.points[idx])
    # measured 2.49 % against 2.62 (median 1.76 against 1.97)
    assert e_fine.mean() < e_plain.mean() - 0.001, (e_fine.mean(), e_plain.mean())


def test_relabelling_with_the_subpixel_teacher_alone(fixture_cache):
    pytest.importorskip("dlib")
    pytest.importorskip("face_recognition_models")
    labels = relabel(fixture_cache, [], human_sources=("300w_lfpw",), subpixel_teacher=True)
    human = fixture_cache.source == 0
    np.testing.assert_array_equal(labels["points"][human], fixture_cache.points[human])
    idx = np.flatnonzero(~human)
    again, found = teacher_on(fixture_cache, idx, subpixel=True)
    assert labels["teacher_found"] == found.sum() > 0
    np.testing.assert_allclose(labels["points"][idx[found]], again[found])
    np.testing.assert_array_equal(labels["points"][idx[~found]], fixture_cache.points[idx[~found]])
    assert labels["blend"] == 0.0
    with pytest.raises(ValueError, match="give models"):
        relabel(fixture_cache, [])
