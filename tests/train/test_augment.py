import numpy as np
import pytest

from tests.train.dots import dot_centroid
from tracker.core.geometry import apply
from tracker.core.landmarks import IBUG68
from train.augment import AugmentConfig, augment, canonical_transform
from train.cache import CACHE_SIDE


def test_flip_swaps_left_and_right_points(fixture_cache):
    img, xy = fixture_cache.images[0], fixture_cache.points[0].astype(np.float64)
    cfg = AugmentConfig(rotation_deg=0, scale=(1, 1), translate=0, flip=1.0, blur=0, grey=0)
    out, pts, m = augment(np.random.default_rng(0), img, xy, cfg, 128)
    canon = apply(canonical_transform(128), xy)
    mirrored_x = 127 - canon[:, 0]
    # point 36 (right eye outer corner) after the flip is where the mirrored 45 is, and so on
    for a, b in [(36, 45), (0, 16), (48, 54), (30, 30)]:
        assert np.allclose(pts[a], [mirrored_x[b], canon[b, 1]], atol=1e-6)
    # the mirrored image agrees: the crop is the canonical crop mirrored
    assert np.linalg.det(m[:, :2]) < 0
    assert list(IBUG68.flip[:3]) == [16, 15, 14]


def test_augmented_points_follow_the_pixels(fixture_cache):
    """A bright dot drawn at a landmark in the cache crop stays under the augmented landmark."""
    rng = np.random.default_rng(1)
    img = np.zeros((CACHE_SIDE, CACHE_SIDE, 3), np.uint8)
    xy = fixture_cache.points[0].astype(np.float64)
    x, y = np.round(xy[30]).astype(int)
    img[y - 2:y + 3, x - 2:x + 3] = 255
    xy[30] = [x, y]
    cfg = AugmentConfig(colour=(1, 1), blur=0, grey=0, flip=0.0)
    for _ in range(5):
        out, pts, _ = augment(rng, img, xy, cfg, 128)
        centroid = dot_centroid(out)
        assert np.linalg.norm(centroid - pts[30]) < 0.2


def test_channel_shuffle_reorders_the_colours():
    from train.augment import photometric

    rng = np.random.default_rng(0)
    img = np.zeros((4, 4, 3), np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = 10, 100, 200
    keep = AugmentConfig(colour=(1, 1), grey=0, channel_shuffle=0.0)
    np.testing.assert_array_equal(photometric(rng, img, keep), img)
    shuffle = AugmentConfig(colour=(1, 1), grey=0, channel_shuffle=1.0)
    seen = set()
    for _ in range(60):
        out = photometric(rng, img, shuffle)
        order = tuple(int(out[0, 0, c]) for c in range(3))
        assert sorted(order) == [10, 100, 200] and order != (10, 100, 200)
        seen.add(order)
    assert len(seen) == 5  # every non-identity order occurs


def test_upright_samples_have_level_eyes_and_the_residual_roll(fixture_cache):
    """A face rolled 25 deg in its crop comes out upright (eyes level, mirrored or not), then
    turned by at most `rotation_deg`; the canonical crop turned by its roll is upright too."""
    from tracker.core.geometry import similarity
    from train.augment import eye_roll

    img, xy = fixture_cache.images[0], fixture_cache.points[0].astype(np.float64)
    c = (img.shape[0] - 1) / 2
    m = similarity(np.array([c, c]), np.array([c, c]), 1.0, -25.0)
    rolled = apply(m, xy)
    assert abs(abs(eye_roll(rolled) - eye_roll(xy)) - 25.0) < 1e-6
    rng = np.random.default_rng(0)
    for flip in (0.0, 1.0):
        level = AugmentConfig(rotation_deg=0, flip=flip, blur=0, grey=0, upright=True)
        _, pts, _ = augment(rng, img, rolled, level, 128)
        assert abs(eye_roll(pts)) < 1e-6
    loose = AugmentConfig(rotation_deg=10, blur=0, grey=0, upright=True)
    rolls = [eye_roll(augment(rng, img, rolled, loose, 128)[1]) for _ in range(40)]
    assert max(map(abs, rolls)) <= 10 + 1e-6 and np.std(rolls) > 3
    assert abs(eye_roll(apply(canonical_transform(128, roll=eye_roll(rolled)), rolled))) < 1e-6
    plain = [eye_roll(augment(rng, img, rolled, AugmentConfig(rotation_deg=0, flip=0), 128)[1])]
    assert abs(plain[0] - eye_roll(rolled)) < 1e-6  # without `upright` the roll stays


def test_the_device_augmentation_refuses_upright():
    from train.gpu_augment import check_supported

    check_supported(AugmentConfig())
    with pytest.raises(ValueError, match="upright"):
        check_supported(AugmentConfig(upright=True))
