"""Caches at any resolution: the same faces cut at two sides, augmented and trained on by
models of the matching input size; a cache too small for its model is refused."""
import json
from dataclasses import replace

import cv2
import numpy as np
import pytest

from tests.train.dots import dot_centroid
from tracker.core.geometry import apply
from tracker.core.model_config import ModelConfig
from train.augment import AugmentConfig, augment, canonical_transform
from train.cache import (
    MARGIN,
    Cache,
    CacheMismatch,
    build,
    build_command,
    check_fits,
    default_path,
    path_for,
    read_side,
    side_for,
)
from train.config import RECIPES, TrainConfig
from train.loop import Trainer

from .conftest import FIXTURES

#: The fixture stills as human faces and the fixture clip as a video source.
SOURCES = [("300w_lfpw", "images", "stills", True), ("videos", "videos", ".", False)]
TINY64 = ModelConfig(stacks=1, width=16, depth=2, input_hw=(64, 64), heatmap_hw=(16, 16), stem_width=8)
TINY128 = replace(TINY64, input_hw=(128, 128), heatmap_hw=(32, 32))


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory):
    return tmp_path_factory.mktemp("caches")


@pytest.fixture(scope="module")
def caches(cache_root) -> dict[int, Cache]:
    """The fixture faces cut at 96 px (for 64-px models) and 192 px (for 128-px models)."""
    return {side: build(FIXTURES, cache_root / f"crops_{side}.npz", video_every=24, side=side,
                        sources=SOURCES)
            for side in (96, 192)}


def _cfg(tmp_path, name: str) -> TrainConfig:
    return TrainConfig(preset="rt-s", out=str(tmp_path / name), batch=4, samples_per_epoch=4, epochs=1,
                       source_weights={"300w_lfpw": 0.5, "videos": 0.5}, human_sources=("300w_lfpw",),
                       val_fraction=0.3, threads=1)


def test_the_side_is_in_the_crops_the_sidecar_and_the_name(caches, cache_root):
    for side, cache in caches.items():
        assert cache.images.shape[1:] == (side, side, 3) and cache.side == side
        assert len(cache.images) == 7 + 3  # seven stills, three frames of the clip
    assert read_side(cache_root / "crops_96.npz") == 96
    assert json.loads((cache_root / "crops_96.json").read_text())["side"] == 96
    assert Cache.load(cache_root / "crops_96.npz").side == 96
    assert default_path(192).name == "train_crops.npz" and default_path(384).name == "train_crops_384.npz"
    assert side_for(128) == 192 and side_for(256) == 384


def test_the_same_face_agrees_across_sides_up_to_scale(caches):
    small, big = caches[96], caches[192]
    # pixel centres on integers: the crop centre (S - 1) / 2 is fixed, distances scale by 2
    np.testing.assert_allclose(big.points - 95.5, 2 * (small.points - 47.5), atol=1e-3)
    # the pixels agree too: the big crop shrunk by two is the small crop, up to resampling
    shrunk = np.stack([cv2.resize(im, (96, 96), interpolation=cv2.INTER_AREA) for im in big.images])
    diff = np.abs(shrunk.astype(float) - small.images.astype(float)).mean()
    assert diff < 6, diff
    # the canonical crop shows the face where it is at either side
    for i in range(len(small.points)):
        a = apply(canonical_transform(64, 96), small.points[i])
        b = apply(canonical_transform(64, 192), big.points[i])
        np.testing.assert_allclose(a, b, atol=1e-3)


@pytest.mark.parametrize("side", [96, 192, 384])
def test_augmented_points_follow_the_pixels_at_any_side(side):
    """A bright dot in a cache crop of any side stays under its augmented point."""
    rng = np.random.default_rng(side)
    img = np.zeros((side, side, 3), np.uint8)
    xy = np.full((68, 2), (side - 1) / 2)
    r = side // 48
    x = y = int(round(side * 0.4))
    img[y - r:y + r + 1, x - r:x + r + 1] = 255
    xy[30] = [x, y]
    cfg = AugmentConfig(colour=(1, 1), blur=0, grey=0, flip=0.5)
    for _ in range(5):
        out, pts, m = augment(rng, img, xy, cfg, 64)
        centroid = dot_centroid(out)
        k = 30  # the nose tip is its own mirror image, so it keeps its index under a flip
        assert np.linalg.norm(centroid - pts[k]) < 0.25
        # the canonical square maps onto the input at scale 0.85-1.15
        scale = np.sqrt(abs(np.linalg.det(m[:, :2])))
        assert 0.85 - 1e-9 <= scale / (64 / (side / MARGIN)) <= 1.15 + 1e-9


def test_a_trainer_of_each_input_trains_a_step_from_its_cache(caches, tmp_path):
    for mc, side in ((TINY64, 96), (TINY128, 192)):
        tr = Trainer(_cfg(tmp_path, f"run{side}"), caches[side], mc)
        loss = tr.train_step(tr.train_idx[:4])
        assert np.isfinite(loss) and loss > 0
        assert np.isfinite(tr.validate()["val_nme"])
    siamese = Trainer(replace(_cfg(tmp_path, "siamese"), siamese=True), caches[96], TINY64)
    assert np.isfinite(siamese.train_step(siamese.train_idx[:4]))


def test_a_cache_smaller_than_the_model_is_refused_with_the_command(caches, tmp_path):
    with pytest.raises(CacheMismatch, match=r"python -m train\.cache DATA_ROOT --side 192"):
        Trainer(_cfg(tmp_path, "bad"), caches[96], TINY128)
    with pytest.raises(CacheMismatch, match="train_crops_384.npz"):
        check_fits(192, 256, ".cache/train_crops.npz")
    with pytest.warns(UserWarning, match="alias"):
        check_fits(384, 64)
    check_fits(192, 128)  # the default cache fits the real-time models
    assert RECIPES["paper"].cache == str(default_path(384))


def test_the_cli_refuses_a_mismatched_cache_before_loading_it(caches, tmp_path, capsys):
    from train.cli import main

    path = tmp_path / "small.npz"
    caches[96].save(path)
    (tmp_path / "small.json").write_text(json.dumps({"side": 96}))
    rc = main(["rt", "--set", f"cache={path}", f"out={tmp_path / 'run'}"])
    err = capsys.readouterr().err
    assert rc == 2 and "--side 192" in err and "upsampled" in err


def test_path_for_prefers_the_models_own_cache_then_the_default_where_it_fits(tmp_path):
    own, default = tmp_path / "train_crops_168.npz", tmp_path / "train_crops.npz"
    assert path_for(112, tmp_path) == own  # nothing there: the one to build
    default.touch()
    assert path_for(112, tmp_path) == default  # 128-px canonical crops shrink to 112
    assert path_for(160, tmp_path) == tmp_path / "train_crops_240.npz"  # would upsample
    assert path_for(48, tmp_path) == tmp_path / "train_crops_72.npz"  # would shrink > 2x
    own.touch()
    assert path_for(112, tmp_path) == own
    assert path_for(128, tmp_path) == default


def test_a_missing_cache_names_the_command_that_cuts_it(tmp_path):
    assert build_command(default_path(240)) == "`python -m train.cache DATA_ROOT --side 240`"
    assert build_command(default_path()) == "`python -m train.cache DATA_ROOT --side 192`"
    assert build_command(tmp_path / "x.npz", 96) == f"`python -m train.cache DATA_ROOT --side 96 -o {tmp_path / 'x.npz'}`"
    assert "--side SIDE -o" in build_command(tmp_path / "x.npz")
    with pytest.raises(FileNotFoundError, match=r"--side 240 -o .*train_crops_240\.npz`"):
        Cache.load(tmp_path / "train_crops_240.npz")  # the side from the name, the place given
