"""A pack: every human face, teacher faces within the byte budget, JPEG crops that decode to
the crops `train.cache.cut` makes, points that stay on their pixels."""
import numpy as np
import pytest

from tracker.core.datasets import image_folder, read_image
from train.cache import build, cut
from train.pack import Pack, build_from_cache, build_from_data, interleave, teacher_shares

from .conftest import FIXTURES

SOURCES = [("300w_lfpw", "images", "stills", True), ("videos", "videos", ".", False)]


def test_humans_first_then_teacher_faces_within_the_budget(tmp_path):
    big = build_from_data(FIXTURES, tmp_path / "big", 400_000, side=80, margin=1.25, sources=SOURCES, per_clip=4)
    assert big.meta["human_faces"] == 7 and big.meta["teacher_faces"] == 4
    assert list(big.source[:7]) == [0] * 7 and list(big.source[7:]) == [1] * 4
    assert big.meta["bytes"] == (tmp_path / "big" / "pack.npz").stat().st_size <= 400_000
    # the human faces take ~21 kB (~24 kB as estimated), a teacher face ~2.6 kB
    small = build_from_data(FIXTURES, tmp_path / "small", 30_000, side=80, margin=1.25, sources=SOURCES,
                            per_clip=4)
    assert small.meta["human_faces"] == 7 and 1 <= small.meta["teacher_faces"] < 4
    assert small.meta["bytes"] <= 30_000
    with pytest.raises(ValueError, match="human faces alone"):
        build_from_data(FIXTURES, tmp_path / "none", 20_000, side=80, sources=SOURCES)
    with pytest.raises(ValueError, match="test set"):
        build_from_data(FIXTURES, tmp_path / "test", 400_000, sources=[("x", "images", "300w/helen_testset", True)])


def test_crops_decode_to_the_cut_crops_and_points(tmp_path):
    pack = build_from_data(FIXTURES, tmp_path / "p", 400_000, side=80, margin=1.25, sources=SOURCES[:1],
                           quality=90)
    again = Pack.load(tmp_path / "p")
    assert again.side == 80 and again.margin == 1.25 and again.canonical_side == 64
    imgs = again.images(threads=2)
    assert imgs.shape == (7, 80, 80, 3) and imgs.dtype == np.uint8
    for i, r in enumerate(image_folder(FIXTURES / "stills")):
        crop, pts = cut(read_image(r.image), r.points, 80, 1.25)
        np.testing.assert_allclose(again.points[i], pts, atol=1e-4)
        assert np.abs(imgs[i].astype(float) - crop).mean() < 4  # JPEG at quality 90
    assert list(pack.group) == list(again.group) and again.names == ["300w_lfpw", "videos"][:1]


def test_from_a_cache_the_faces_are_recut_with_their_points(tmp_path):
    cache = build(FIXTURES, tmp_path / "c.npz", video_every=24, side=120, sources=SOURCES)  # canonical 80
    pack = build_from_cache(cache, tmp_path / "p", 400_000, ("300w_lfpw",), side=80, margin=1.0, quality=95)
    assert pack.meta["human_faces"] == 7 and pack.meta["teacher_faces"] == 3
    # the pack crop is the cache's canonical crop, shrunk from 80 to 80: the same pixels
    imgs = pack.images()
    np.testing.assert_allclose(pack.points[:7], cache.points[:7] - 20, atol=1e-4)
    assert np.abs(imgs[0].astype(float) - cache.images[0][20:100, 20:100]).mean() < 4
    with pytest.warns(UserWarning, match="enlarged"):
        build_from_cache(cache, tmp_path / "q", 400_000, ("300w_lfpw",), side=160, margin=1.25)


def test_interleave_keeps_each_source_near_its_share():
    queues = {"a": list(range(100)), "b": list(range(100, 200)), "c": [300]}
    got = list(interleave(queues, {"a": 0.6, "b": 0.3, "c": 0.1}))[:30]
    # c runs dry after one; a and b share the rest 2 : 1
    assert abs(sum(v < 100 for v in got) - 29 * 2 / 3) <= 1 and 300 in got
    shares = teacher_shares(["300w_lfpw", "lfw", "videos"], {"300w_lfpw"})
    assert set(shares) == {"lfw", "videos"} and abs(sum(shares.values()) - 1) < 1e-9
