import numpy as np
import pytest
import torch

from tracker.core import codec_torch
from tracker.core.geometry import apply, invert, similarity
from train.loss import heatmap_l2, siamese_l2, warp_heatmaps


def _maps(xy, hw=(32, 32), sigma=2.0):
    return codec_torch.encode(torch.as_tensor(xy, dtype=torch.float32)[None], hw, sigma)


def test_warp_moves_a_peak_where_the_transform_says():
    xy = np.array([[14.3, 17.8], [10.6, 9.2]])
    m = similarity(np.array([15.5, 15.5]), np.array([16.0, 15.0]), 1.1, 20.0)
    warped, inside = warp_heatmaps(_maps(xy), m[None], (32, 32))
    got, _ = codec_torch.decode(warped)
    assert np.abs(got[0].numpy() - apply(m, xy)).max() < 0.05
    assert inside[0, 0, 16, 16] == 1 and inside.mean() < 1


def test_warp_round_trip_restores_heatmaps():
    xy = np.array([[14.3, 17.8], [18.6, 12.2]])
    hm = _maps(xy)
    m = similarity(np.array([15.5, 15.5]), np.array([15.0, 16.0]), 0.9, -25.0)
    there, _ = warp_heatmaps(hm, m[None], (32, 32))
    back, inside = warp_heatmaps(there, invert(m)[None], (32, 32))
    core = (slice(None), slice(None), slice(8, 24), slice(8, 24))
    # bilinear resampling twice blurs a sigma-2 peak by up to ~10 % of its height; positions stay
    assert (back - hm)[core].abs().max() < 0.12
    got, _ = codec_torch.decode(back)
    assert np.abs(got[0].numpy() - xy).max() < 0.05


def test_siamese_loss_is_zero_for_consistent_predictions_only():
    ref = np.array([[14.3, 17.8], [18.6, 12.2]])
    ma = similarity(np.array([15.5, 15.5]), np.array([15.0, 16.0]), 0.95, 15.0)
    mb = similarity(np.array([15.5, 15.5]), np.array([16.5, 15.0]), 1.05, -10.0)
    pa, pb = _maps(apply(ma, ref)), _maps(apply(mb, ref))
    target = _maps(ref)
    w = torch.ones(1)
    good = siamese_l2(pa, pb, invert(ma)[None], invert(mb)[None], target, w)
    bad = siamese_l2(pa, pb, ma[None], mb[None], target, w)  # warped the wrong way
    assert good < 0.05 * float((target**2).sum((-1, -2)).mean())
    assert bad > 20 * good


def test_heatmap_l2_weights_and_masks():
    t = torch.zeros(2, 3, 4, 4)
    p = torch.zeros(2, 3, 4, 4)
    p[0] = 1.0  # sample 0 is off by 1 everywhere: 16 per map
    assert heatmap_l2(p, t, torch.tensor([1.0, 1.0])) == 8.0
    assert heatmap_l2(p, t, torch.tensor([0.0, 1.0])) == 0.0
    mask = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    assert heatmap_l2(p, t, torch.tensor([1.0, 0.0]), mask) == 16.0


def test_per_point_weights_weigh_points_within_their_sample():
    from train.loss import heatmap_awing

    t = torch.zeros(2, 3, 4, 4)
    p = torch.zeros(2, 3, 4, 4)
    p[0, 0] = 1.0  # only point 0 of sample 0 is off: 16
    p[1] = 0.5  # every point of sample 1 is off: 4 each
    rows = torch.tensor([[1.0, 1.0, 1.0], [0.5, 0.5, 0.5]])
    for loss in (heatmap_l2, heatmap_awing):  # a row of equal weights is its sample's weight
        assert torch.allclose(loss(p, t, rows), loss(p, t, torch.tensor([1.0, 0.5])))
    # point 0 of sample 0 weighs 3, the rest 0: (3 * 16 / 3) over the mean weight 1 (+ 0)
    w = torch.tensor([[3.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    assert heatmap_l2(p, t, w) == 16.0
    # a sample's teacher-weighted points only: sample 1 counts through its point 2 alone
    w = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 1.5]])
    assert torch.allclose(heatmap_l2(p, t, w), torch.tensor((16 / 3 + 1.5 * 4 / 3) / (1 + 0.5)))


def test_a_slice_of_a_batch_divides_by_the_given_total():
    t = torch.zeros(4, 3, 4, 4)
    p = torch.rand(4, 3, 4, 4)
    w = torch.tensor([1.0, 0.5, 1.0, 1.0])
    whole = heatmap_l2(p, t, w)
    # two halves with the global weight sum over 2: the mean of their losses is the whole's
    halves = [heatmap_l2(p[s], t[s], w[s], total=float(w.sum()) / 2) for s in (slice(0, 2), slice(2, 4))]
    assert torch.allclose((halves[0] + halves[1]) / 2, whole)


def test_awing_matches_its_formula_and_its_two_pieces_meet():
    from train.loss import heatmap_awing

    # one pixel per map: the loss of a 1x1 map is the per-pixel loss (x 11 in the foreground)
    y = torch.tensor([0.0, 0.5, 1.0, 0.0, 1.0])
    p = torch.tensor([0.3, 0.2, 0.95, 0.9, 0.1])
    got = [float(heatmap_awing(p[i].view(1, 1, 1, 1), y[i].view(1, 1, 1, 1), torch.ones(1)))
           for i in range(5)]
    d, a = (y - p).abs(), 2.1 - y
    small = 14 * torch.log1p(d ** a)
    big_a = 14 / (1 + 0.5 ** a) * a * 0.5 ** (a - 1)
    big = big_a * d - (0.5 * big_a - 14 * torch.log1p(0.5 ** a))
    ref = torch.where(d < 0.5, small, big) * torch.where(y > 0.2, 11.0, 1.0)
    np.testing.assert_allclose(got, ref.numpy(), rtol=1e-5)
    # continuity at theta: just below and just above 0.5 give the same loss
    y0 = torch.full((1, 1, 1, 1), 0.3)
    lo, hi = (float(heatmap_awing(y0 + e, y0, torch.ones(1))) for e in (0.4999, 0.5001))
    assert abs(hi - lo) < 1e-2 * lo


def test_awing_punishes_small_errors_at_a_peak_more_than_l2():
    """Its point: near a Gaussian's peak (y ~ 1) the exponent falls to ~1.1, so the gradient of
    a small error stays large where L2's vanishes."""
    from train.loss import heatmap_awing

    target = _maps(np.array([[15.3, 16.6]]))
    pred = (target * 0.97).requires_grad_(True)  # the peak 3 % low
    heatmap_awing(pred, target, torch.ones(1)).backward()
    g_awing = pred.grad.abs().max() / pred.grad.abs().sum()
    pred.grad = None
    heatmap_l2(pred, target, torch.ones(1)).backward()
    g_l2 = pred.grad.abs().max() / pred.grad.abs().sum()
    assert float(heatmap_awing(target, target, torch.ones(1))) == 0.0
    # the share of the gradient at the peak pixel is larger under the adaptive wing
    assert g_awing > 2.0 * g_l2  # measured 2.4


def test_decoded_l1_is_the_decoded_points_distance_and_its_gradient_moves_them():
    """Maps rendered at the labels decode onto them (to the codec's sampling bias, about 0.01
    px, measured 0.011 here); maps rendered 0.4 px off cost that distance, and a step down its
    gradient brings the decoded points closer without moving the argmax."""
    from train.loss import decoded_l1

    labels = torch.tensor([[[10.3, 12.6], [20.0, 7.45]]])
    ones = torch.ones(1)
    assert float(decoded_l1(_maps(labels[0].numpy()), labels, ones)) < 0.015
    off = _maps(labels[0].numpy() + np.array([0.4, 0.0])).requires_grad_(True)
    loss = decoded_l1(off, labels, ones)
    assert float(loss.detach()) == pytest.approx(0.4, abs=0.01)
    loss.backward()
    with torch.no_grad():
        stepped = off - 0.02 * off.grad / off.grad.abs().max()
    assert float(decoded_l1(stepped, labels, ones)) < 0.9 * float(loss.detach())
    assert torch.equal(stepped.flatten(-2).argmax(-1), off.flatten(-2).argmax(-1))


def test_decoded_l1_leaves_a_point_whose_peak_is_outside_the_labels_window_to_the_heatmap_loss():
    from train.loss import decoded_l1

    labels = torch.tensor([[[10.0, 10.0], [20.0, 20.0]]])
    near_far = _maps(np.array([[11.0, 10.0], [23.5, 20.0]]))  # 1 px off; 3.5 px off (window 5)
    assert float(decoded_l1(near_far, labels, torch.ones(1))) == pytest.approx(1.0 / 2, abs=0.01)
