import math

import numpy as np
import torch

from tracker.core.codec import HeatmapCodec
from tracker.core.model import FAN
from tracker.core.model_config import ModelConfig
from train.validation import validate

TINY = ModelConfig(stacks=1, width=16, depth=2, input_hw=(64, 64), heatmap_hw=(16, 16), stem_width=8)


def test_metrics_on_held_out_faces(fixture_cache):
    torch.manual_seed(0)
    model = FAN(TINY)
    codec = HeatmapCodec(TINY.input_hw, TINY.heatmap_hw)
    idx = np.arange(len(fixture_cache.group))[:5]
    m = validate(model, codec, fixture_cache, idx, batch=2)  # batches of 2, 2 and 1
    assert not model.training
    assert set(m) == {"val_nme", "val_median", "val_auc@0.08", "val_fr@0.08", "val_auc@0.10", "val_fr@0.10"}
    assert 0 < m["val_nme"] < 10 and 0 <= m["val_fr@0.08"] <= 1
    whole = validate(model, codec, fixture_cache, idx)  # batching changes only rounding
    assert all(math.isclose(v, whole[k], rel_tol=1e-6) for k, v in m.items())
    assert math.isnan(validate(model, codec, fixture_cache, idx[:0])["val_nme"])


def test_upright_validation_sees_a_rolled_face_as_its_upright_self(fixture_cache):
    """A face and its copy rolled 30 deg in the crop: upright validation cuts the same crop
    from both (up to the second resampling); plain validation does not."""
    from tracker.core.geometry import apply, similarity, warp
    from train.cache import Cache
    from train.validation import crops

    img, xy = fixture_cache.images[0], fixture_cache.points[0].astype(np.float64)
    c = (img.shape[0] - 1) / 2
    m = similarity(np.array([c, c]), np.array([c, c]), 1.0, 30.0)
    pair = Cache(np.stack([img, warp(img, m, img.shape[:2])]), np.stack([xy, apply(m, xy)]).astype(np.float32),
                 np.zeros(2, int), np.array(["a", "b"]), ["300w_lfpw"])
    (a, b), (ma, mb) = crops(pair, np.array([0, 1]), (64, 64), upright=True)
    centre = (slice(16, 48), slice(16, 48))  # the face, away from the rolled copy's black corners
    assert np.abs(a[centre].astype(int) - b[centre]).mean() < 3  # measured 2.3 levels
    np.testing.assert_allclose(apply(ma, pair.points[0]), apply(mb, pair.points[1]), atol=1e-3)
    (a, b), _ = crops(pair, np.array([0, 1]), (64, 64))
    assert np.abs(a[centre].astype(int) - b[centre]).mean() > 40  # measured 81
