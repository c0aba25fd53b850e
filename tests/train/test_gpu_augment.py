"""The batched torch augmentation agrees with `train.augment` and `tracker.core.geometry`."""
import numpy as np
import pytest
import torch

from tracker.core import geometry
from tracker.core.landmarks import IBUG68
from train import affine
from train import augment as np_augment
from train import gpu_augment as ga
from train.augment import AugmentConfig
from train.loss import affine_grid_for, pixel_theta


def _params(n=6, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.uniform(10, 50, (n, 2)), rng.uniform(10, 50, (n, 2)), rng.uniform(0.5, 2, n),
            rng.uniform(-40, 40, n), rng.random(n) < 0.5)


def test_similarity_compose_invert_apply_are_geometrys():
    cs, cd, s, a, f = _params()
    got = ga.similarity(*(torch.as_tensor(v) for v in (cs, cd, s, a)), torch.as_tensor(f))
    want = np.stack([geometry.similarity(cs[i], cd[i], s[i], a[i], bool(f[i])) for i in range(len(s))])
    np.testing.assert_allclose(got.numpy(), want, atol=1e-9)
    xy = np.random.default_rng(1).uniform(0, 60, (len(s), 5, 2))
    np.testing.assert_allclose(affine.apply(got, torch.as_tensor(xy)).numpy(),
                               np.stack([geometry.apply(w, p) for w, p in zip(want, xy)]), atol=1e-9)
    np.testing.assert_allclose(affine.invert(got).numpy(), np.stack([geometry.invert(w) for w in want]), atol=1e-9)
    np.testing.assert_allclose(affine.compose(got, affine.invert(got)).numpy(),
                               np.tile(np.eye(2, 3), (len(s), 1, 1)), atol=1e-9)
    one = torch.as_tensor(want[0])
    np.testing.assert_allclose(affine.compose(one, got).numpy(),
                               np.stack([geometry.compose(want[0], w) for w in want]), atol=1e-9)


def test_pixel_theta_takes_numpy_and_torch_alike():
    cs, cd, s, a, f = _params()
    m = np.stack([geometry.similarity(cs[i], cd[i], s[i], a[i], bool(f[i])) for i in range(len(s))])
    t_np = pixel_theta(m, (48, 64), (32, 40))
    t_torch = pixel_theta(torch.as_tensor(m, dtype=torch.float32), (48, 64), (32, 40))
    torch.testing.assert_close(t_np, t_torch, atol=1e-5, rtol=1e-5)
    assert affine_grid_for(m, (48, 64), (32, 40)).shape == (len(s), 32, 40, 2)


def test_warp_images_is_geometry_warp():
    """grid_sample through a pixel transform gives OpenCV's warpAffine (pixel centres on
    integers), on a non-square image."""
    rng = np.random.default_rng(2)
    img = np.clip(rng.normal(128, 40, (48, 64, 3)), 0, 255).astype(np.uint8)
    img = np.ascontiguousarray(np.stack([np.roll(img[..., 0], k, 1) for k in range(3)], -1))
    m = geometry.similarity(np.array([31.5, 23.5]), np.array([20.0, 18.0]), 0.7, 25.0, True)
    want = geometry.warp(img, m, (40, 40)).astype(float)
    got = ga.warp_images(torch.as_tensor(img).permute(2, 0, 1)[None], torch.as_tensor(m)[None], 40)[0]
    got = got.permute(1, 2, 0).numpy()
    inner = (slice(4, -4), slice(4, -4))  # away from the border, where OpenCV rounds differently
    assert np.abs(got[inner] - want[inner]).mean() < 0.6


def test_canonical_and_random_transforms_match_train_augment():
    c = ga.canonical_transform(128, 192, 1.5)
    np.testing.assert_allclose(c.numpy(), np_augment.canonical_transform(128, 192), atol=1e-5)
    np.testing.assert_allclose(ga.canonical_transform(256, 320, 1.25).numpy(),
                               geometry.similarity(np.array([159.5] * 2), np.array([127.5] * 2), 1.0), atol=1e-5)
    gen = torch.Generator().manual_seed(0)
    cfg = AugmentConfig()
    m, flip = ga.sample_transforms(gen, 4000, cfg, 256, 320, 1.25)
    scale = torch.sqrt(torch.abs(torch.linalg.det(m[:, :, :2])))
    assert 0.85 - 1e-5 <= float(scale.min()) and float(scale.max()) <= 1.15 + 1e-5
    assert float(scale.max()) > 1.14 and float(scale.min()) < 0.86
    assert torch.equal(torch.linalg.det(m[:, :, :2]) < 0, flip) and 0.45 < float(flip.float().mean()) < 0.55
    # the crop centre lands within +-translate of the input centre
    centre = affine.apply(m, torch.full((4000, 1, 2), 159.5))[:, 0] - 127.5
    assert float(centre.abs().max()) <= 0.08 * 256 + 1e-3
    # rotation angles span +-30 degrees: the angle of the image x axis (mirror undone)
    angle = torch.rad2deg(torch.atan2(m[:, 0, 1], m[:, 0, 0] * torch.where(flip, -1.0, 1.0)))
    assert float(angle.abs().max()) <= 30 + 1e-3 and float(angle.abs().max()) > 29


@pytest.mark.parametrize("side,margin", [(96, 1.5), (80, 1.25)])
def test_augmented_points_follow_the_pixels(side, margin):
    """A bright dot at a point stays under the augmented point; a mirror relabels points
    (36 <-> 45) and moves each to its mirrored place."""
    img = torch.zeros(8, 3, side, side, dtype=torch.uint8)
    x = y = round(side * 0.4)
    img[:, :, y - 1:y + 2, x - 1:x + 2] = 255
    pts = torch.full((8, 68, 2), (side - 1) / 2)
    pts[:, 30] = torch.tensor([float(x), float(y)])
    pts[:, 36] = torch.tensor([10.0, 20.0])
    cfg = AugmentConfig(colour=(1, 1), blur=0, grey=0, flip=0.5)
    out, p, m, flip = ga.augment(torch.Generator().manual_seed(3), img, pts, cfg, 64, margin)
    assert out.shape == (8, 3, 64, 64) and flip.any() and not flip.all()
    for i in range(8):
        g = out[i, 0]
        ys, xs = torch.nonzero(g > 0, as_tuple=True)
        w = g[ys, xs]
        centroid = torch.stack([(xs * w).sum() / w.sum(), (ys * w).sum() / w.sum()])
        assert torch.linalg.norm(centroid - p[i, 30]) < 0.25  # the nose tip is its own mirror
        moved = affine.apply(m[i], pts[i:i + 1, 36:37])[0, 0]
        assert torch.allclose(p[i, IBUG68.flip[36] if flip[i] else 36], moved, atol=1e-4)


def test_photometric_changes_colour_only_as_configured():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(6, 3, 16, 16) * 255
    same = ga.photometric(gen, x, AugmentConfig(colour=(1, 1), grey=0, blur=0))
    torch.testing.assert_close(same, x)
    grey = ga.photometric(gen, x, AugmentConfig(colour=(1, 1), grey=1.0, blur=0))
    torch.testing.assert_close(grey[:, 0], grey[:, 1])
    shuffled = ga.photometric(gen, x, AugmentConfig(colour=(1, 1), grey=0, blur=0, channel_shuffle=1.0))
    for i in range(6):
        assert sorted(float(shuffled[i, c].sum()) for c in range(3)) == pytest.approx(
            sorted(float(x[i, c].sum()) for c in range(3)), rel=1e-5)
        assert not torch.equal(shuffled[i], x[i])
    blurred = ga.photometric(gen, x, AugmentConfig(colour=(1, 1), grey=0, blur=1.0))
    assert float(blurred.std()) < 0.8 * float(x.std())
    scaled = ga.photometric(gen, torch.full((200, 3, 2, 2), 100.0), AugmentConfig(grey=0, blur=0))
    assert 60 - 1e-3 <= float(scaled.min()) and float(scaled.max()) <= 140 + 1e-3
