"""NME, CED, AUC and failure rate on hand-computed cases (tracker/core/metrics.py)."""
import math

import numpy as np
import pytest

from tracker.core.landmarks import INNER49
from tracker.core.metrics import auc_fr, ced, contour_components, nme, normaliser, paired_difference, plot_ced


def _face():
    """(1, 68, 2) points inside a 20 x 5 box, outer eye corners 10 apart."""
    xy = np.zeros((1, 68, 2))
    xy[0, :, 0] = np.linspace(0, 20, 68)
    xy[0, :, 1] = np.linspace(0, 5, 68)[::-1]
    xy[0, 36] = [5.0, 2.0]
    xy[0, 45] = [15.0, 2.0]
    return xy


def test_normalisers_by_hand():
    gt = _face()
    np.testing.assert_allclose(normaliser(gt, "inter_ocular"), [10.0])
    np.testing.assert_allclose(normaliser(gt, "box"), [math.sqrt(20 * 5)])
    np.testing.assert_allclose(normaliser(gt, "diagonal"), [math.sqrt(20**2 + 5**2)])
    with pytest.raises(ValueError, match="unknown normalisation"):
        normaliser(gt, "face_size")


def test_nme_of_a_uniform_3_4_5_shift():
    gt = _face()
    pred = gt + [3.0, 4.0]  # every point 5 px off
    np.testing.assert_allclose(nme(pred, gt), [0.5])
    np.testing.assert_allclose(nme(pred, gt, "box"), [0.5])
    np.testing.assert_allclose(nme(pred, gt, "diagonal"), [5 / math.sqrt(425)])


def test_perfect_prediction_is_zero():
    gt = np.concatenate([_face(), _face() * 3])
    np.testing.assert_array_equal(nme(gt.copy(), gt), [0.0, 0.0])


def test_nme_averages_per_face():
    gt = np.concatenate([_face(), _face()])
    pred = gt.copy()
    pred[1, 0] += [68.0, 0.0]  # one point of face 1 off by 68 px: mean 1 px, NME 0.1
    np.testing.assert_allclose(nme(pred, gt), [0.0, 0.1])


def test_visibility_mask():
    gt = _face()
    pred = gt.copy()
    pred[0, 0] += [100.0, 0.0]  # only point 0 is wrong, and it is hidden
    mask = np.ones((1, 68), bool)
    mask[0, 0] = False
    np.testing.assert_allclose(nme(pred, gt, mask=mask), [0.0])
    pred[0, 1] += [0.0, 67.0]  # a visible error: 67 px over 67 visible points = 1 px
    np.testing.assert_allclose(nme(pred, gt, mask=mask), [0.1])
    # box normalisers use the visible points only: without point 0 at (0, 5) the box shrinks
    vis = gt[0, 1:]
    w, h = vis[:, 0].max() - vis[:, 0].min(), vis[:, 1].max() - vis[:, 1].min()
    np.testing.assert_allclose(normaliser(gt, "box", mask=mask), [math.sqrt(w * h)])
    assert normaliser(gt, "box", mask=mask)[0] < normaliser(gt, "box")[0]


def test_points_subset():
    gt = _face()
    pred = gt.copy()
    pred[0, :17] += [0.0, 4.0]  # only the jaw is off
    np.testing.assert_allclose(nme(pred, gt, points=INNER49), [0.0])
    np.testing.assert_allclose(nme(pred, gt), [17 * 4 / 68 / 10])
    np.testing.assert_allclose(nme(pred, gt, points=tuple(range(17))), [0.4])
    pred[0, 36] += [10.0, 0.0]  # the normaliser always comes from the ground truth
    np.testing.assert_allclose(nme(pred, gt, points=(36,)), [1.0])


def test_nme_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shapes"):
        nme(np.zeros((1, 68, 2)), np.zeros((1, 67, 2)))
    with pytest.raises(ValueError, match="shapes"):
        nme(np.zeros((1, 68, 3)), np.zeros((1, 68, 3)))


def test_auc_and_failure_rate_extremes():
    assert auc_fr(np.zeros(10)) == (pytest.approx(1.0), 0.0)
    assert auc_fr(np.full(10, 0.2), cutoff=0.08) == (0.0, 1.0)
    a, fr = auc_fr(np.array([]))
    assert math.isnan(a) and math.isnan(fr)


def test_auc_of_a_uniform_distribution():
    """Errors uniform on [0, 2c]: CED(t) = t / 2c up to c, area (c / 4) / c = 0.25; half fail."""
    c = 0.08
    e = (np.arange(100000) + 0.5) / 100000 * 2 * c
    a, fr = auc_fr(e, c)
    assert a == pytest.approx(0.25, abs=1e-3)
    assert fr == pytest.approx(0.5)


def test_auc_of_a_step():
    """Every face at error c / 4: CED is 0 before and 1 after, area 3/4."""
    a, fr = auc_fr(np.full(7, 0.02), cutoff=0.08)
    assert a == pytest.approx(0.75, abs=1e-3) and fr == 0.0


def test_ced_counts_faces_at_or_below_each_threshold():
    t, f = ced(np.array([0.005, 0.025, 0.025, 0.5]), 0.04, n=5)  # t = 0, .01, .02, .03, .04
    np.testing.assert_allclose(t, [0, 0.01, 0.02, 0.03, 0.04])
    np.testing.assert_allclose(f, [0, 0.25, 0.25, 0.75, 0.75])


def test_plot_ced_writes_a_png(tmp_path):
    path = tmp_path / "ced.png"
    g = np.random.default_rng(0)
    plot_ced({"a": g.uniform(0, 0.1, 50), "b": g.uniform(0, 0.05, 50)}, str(path))
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_contour_components_split_an_error_on_the_contours_tangent():
    """On a circle arc, a point slid along the arc by a small angle errs along, one pushed
    outwards errs across (up to what the one-sided tangents at the two ends leak, 1.5 %); a
    straight line's tangent is its direction."""
    theta = np.linspace(0.2, np.pi - 0.2, 17)
    gt = np.stack([np.cos(theta), np.sin(theta)], -1)[None] * 100
    slid = np.stack([np.cos(theta + 0.01), np.sin(theta + 0.01)], -1)[None] * 100
    out = gt * 1.03
    along, across = contour_components(slid, gt, tuple(range(17)))
    assert along[0] == pytest.approx(1.0, abs=1e-3) and across[0] < 0.016
    along, across = contour_components(out, gt, tuple(range(17)))
    assert along[0] < 0.032 and across[0] == pytest.approx(3.0, abs=2e-3)
    line = np.zeros((1, 5, 2))
    line[0, :, 0] = np.arange(5) * 10.0
    along, across = contour_components(line + (3.0, 4.0), line, tuple(range(5)))
    assert (along[0], across[0]) == pytest.approx((3.0, 4.0))


def test_paired_difference_interval_matches_the_standard_error():
    """A constant shift comes back exactly with a zero-width interval; for a shift of 0.1 with
    unit noise over 400 faces the 95 % interval is about 2 x 1.96 / sqrt(400) wide, centred on
    the sample mean, and it holds the true shift."""
    a = np.linspace(0.02, 0.06, 50)
    assert paired_difference(a, a + 0.01) == pytest.approx((0.01, 0.01, 0.01))
    rng = np.random.default_rng(1)
    a = rng.normal(size=400)
    b = a + 0.1 + rng.normal(size=400)
    mean, lo, hi = paired_difference(a, b)
    assert mean == pytest.approx((b - a).mean())
    assert hi - lo == pytest.approx(2 * 1.96 * (b - a).std() / 20, rel=0.05)
    assert lo < 0.1 < hi and lo < mean < hi
    with pytest.raises(ValueError, match="same faces"):
        paired_difference(a, b[:10])
