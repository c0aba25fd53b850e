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
