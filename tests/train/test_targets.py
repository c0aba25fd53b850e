import numpy as np
import pytest
import torch

from tracker.core.codec import HeatmapCodec
from tracker.core.geometry import apply
from tracker.core.landmarks import IBUG68
from train.augment import AugmentConfig, canonical_transform, sample_transform
from train.cache import Cache
from train.config import TrainConfig
from train.targets import branch_to_canonical, heatmap_targets, label_weights, unmirror

CODEC = HeatmapCodec((64, 48), (16, 12), sigma=1.5)


def test_targets_peak_at_the_points():
    xy = np.array([[[10.3, 20.6], [40.2, 7.9]]])  # (1, 2, 2) input pixels, x < 48, y < 64
    hm = heatmap_targets(CODEC, xy)
    assert hm.shape == (1, 2, 16, 12) and hm.dtype == torch.float32
    assert torch.allclose(hm, torch.from_numpy(CODEC.encode(xy)), atol=1e-6)  # the codec's own targets
    got, _ = CODEC.decode(hm.numpy())
    assert np.abs(got - xy).max() < 0.25  # a sixteenth of a heatmap pixel


def test_a_branch_peak_maps_to_the_canonical_peak():
    codec = HeatmapCodec((64, 64), (16, 16))
    rng = np.random.default_rng(3)
    ms = np.stack([sample_transform(rng, AugmentConfig(flip=f), 64)[0] for f in (0.0, 1.0)])
    canon = canonical_transform(64)
    p = np.array([[90.0, 100.0], [120.5, 80.25]])  # cache-crop pixels
    in_branch = apply(codec.to_heatmap, apply(ms, p[None]))  # (2, 2, 2) branch heatmap pixels
    got = apply(branch_to_canonical(codec, canon, ms), in_branch)
    assert np.allclose(got, apply(codec.to_heatmap, apply(canon, p))[None], atol=1e-9)


def test_unmirror_relabels_only_mirrored_samples():
    hm = torch.arange(2 * 68, dtype=torch.float32).reshape(2, 68, 1, 1)
    plain = np.array([[[1.0, 0, 0], [0, 1, 0]]])
    mirror = np.array([[[-1.0, 0, 0], [0, 1, 0]]])
    out = unmirror(hm, np.concatenate([plain, mirror]))
    assert torch.equal(out[0], hm[0]) and torch.equal(out[1], hm[1, list(IBUG68.flip)])


def test_human_labels_weigh_one_and_teacher_labels_less():
    cache = Cache(np.zeros((2, 1, 1, 3), np.uint8), np.zeros((2, 68, 2)), np.array([0, 1]),
                  np.array(["a", "b"]), ["human", "teacher"])
    w = label_weights(cache, TrainConfig(human_sources=("human",), teacher_loss_weight=0.25))
    assert w.tolist() == [1.0, 0.25]


def test_teacher_part_weights_weigh_the_teachers_points_of_a_part_apart():
    cache = Cache(np.zeros((2, 1, 1, 3), np.uint8), np.zeros((2, 68, 2)), np.array([0, 1]),
                  np.array(["a", "b"]), ["human", "teacher"])
    cfg = TrainConfig(human_sources=("human",), teacher_loss_weight=0.25,
                      teacher_part_weights={"jaw": 1.0})
    w = label_weights(cache, cfg)
    assert w.shape == (2, 68)
    assert (w[0] == 1.0).all()  # human labels keep 1 everywhere
    jaw = list(IBUG68.groups["jaw"])
    assert (w[1, jaw] == 1.0).all() and (np.delete(w[1], jaw) == 0.25).all()
    with pytest.raises(ValueError, match="no part"):
        label_weights(cache, TrainConfig(human_sources=("human",), teacher_part_weights={"chin": 1.0}))
    with pytest.raises(ValueError, match="Siamese"):
        TrainConfig(siamese=True, teacher_part_weights={"jaw": 1.0})
