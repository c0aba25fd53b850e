import numpy as np
import pytest

from tests.train.dots import dot_centroid
from tracker.core.geometry import apply
from tracker.core.landmarks import IBUG68
from train.augment import AugmentConfig, augment, canonical_transform, occlude
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


def _changed_box(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, tuple[slice, slice]]:
    """The mask of pixels where two images differ and the bounding box of that mask."""
    diff = (a != b).any(-1)
    ys, xs = np.nonzero(diff)
    return diff, (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))


def test_occlude_paints_one_rectangle_of_one_colour_within_its_size_range():
    rng = np.random.default_rng(3)
    img = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    before, sizes = img.copy(), []
    for _ in range(30):
        out = occlude(rng, img, (0.15, 0.4))
        diff, box = _changed_box(out, img)
        patch = out[box]
        assert (patch == patch[0, 0]).all()  # one colour over the whole box
        assert diff[box].mean() > 0.97  # the changed pixels fill their box (a random image
        # keeps a pixel only where it already had that colour)
        sizes += [patch.shape[0], patch.shape[1]]
        touches = box[0].start == 0 or box[1].start == 0 or box[0].stop == 128 or box[1].stop == 128
        if not touches:  # clipped rectangles are smaller
            assert 0.15 * 128 - 1 <= min(patch.shape[:2]) and max(patch.shape[:2]) <= 0.4 * 128 + 1
    assert max(sizes) > 0.33 * 128
    np.testing.assert_array_equal(img, before)  # the input is left as it was


def test_occlusion_covers_part_of_the_sample_and_keeps_every_point(fixture_cache):
    img, xy = fixture_cache.images[0], fixture_cache.points[0].astype(np.float64)
    plain = augment(np.random.default_rng(5), img, xy, AugmentConfig(), 128)
    covered = augment(np.random.default_rng(5), img, xy, AugmentConfig(occlusion=1.0), 128)
    np.testing.assert_array_equal(plain[1], covered[1])  # same points, same transform
    np.testing.assert_array_equal(plain[2], covered[2])
    diff, _ = _changed_box(plain[0], covered[0])
    assert 0.15**2 * 0.5 < diff.mean() < 0.4**2  # one rectangle, maybe clipped at a border


def test_the_device_augmentation_refuses_what_it_lacks():
    from train.gpu_augment import check_supported

    check_supported(AugmentConfig())
    with pytest.raises(ValueError, match="upright"):
        check_supported(AugmentConfig(upright=True))
    with pytest.raises(ValueError, match="occlusion"):
        check_supported(AugmentConfig(occlusion=0.5))
