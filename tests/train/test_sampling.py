import numpy as np

from train.cache import Cache
from train.config import TrainConfig
from train.sampling import draw_batch, human_split, sampling_weights, split


def _cache(sources, groups, names):
    n = len(sources)
    return Cache(np.zeros((n, 1, 1, 3), np.uint8), np.zeros((n, 68, 2), np.float32),
                 np.asarray(sources), np.asarray(groups), names)


def test_validation_split_is_by_identity(fixture_cache):
    cfg = TrainConfig(human_sources=("300w_lfpw",), val_fraction=0.3)
    train_idx, val_idx = split(fixture_cache, cfg)
    assert len(train_idx) + len(val_idx) == len(fixture_cache.group) and len(val_idx) > 0
    val_groups = set(fixture_cache.group[val_idx])
    assert val_groups.isdisjoint(set(fixture_cache.group[train_idx]))
    assert all(g.startswith("stills/") for g in val_groups)  # only human faces validate
    again = split(fixture_cache, cfg)
    assert np.array_equal(again[1], val_idx)
    human_train, same_val = human_split(fixture_cache, cfg)
    assert np.array_equal(same_val, val_idx) and set(human_train) < set(train_idx) and len(human_train)
    names = np.asarray(fixture_cache.names)[fixture_cache.source]
    assert set(names[human_train]) == {"300w_lfpw"}
    assert set(np.flatnonzero(names == "300w_lfpw")) == set(human_train) | set(val_idx)


def test_sources_get_their_share_and_clips_share_the_videos_equally():
    cache = _cache([0, 0, 0, 1, 1, 1, 1], ["a", "b", "c", "v/1", "v/2", "v/2", "v/2"], ["stills", "videos"])
    cfg = TrainConfig(source_weights={"stills": 0.6, "videos": 0.4, "absent": 0.5})
    idx = np.arange(7)
    p = sampling_weights(cache, idx, cfg)
    assert np.isclose(p.sum(), 1) and np.allclose(p[:3], 0.2)
    assert np.isclose(p[3], 0.2) and np.allclose(p[4:], 0.2 / 3)  # one clip of 1 frame, one of 3


def test_a_batch_is_drawn_by_weight_with_replacement():
    idx = np.array([10, 11, 12])
    b = draw_batch(np.random.default_rng(0), idx, np.array([0.5, 0.5, 0.0]), 64)
    assert b.shape == (64,) and set(b) == {10, 11}
