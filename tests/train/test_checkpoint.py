import pytest
import torch

from tracker.core.codec import HeatmapCodec
from tracker.core.model import FAN
from tracker.core.model_config import ModelConfig
from tracker.core.modelfile import load_torch
from train import checkpoint

TINY = ModelConfig(stacks=1, width=16, depth=2, input_hw=(64, 64), heatmap_hw=(16, 16), stem_width=8)


def _state(model):
    return {"model": model.state_dict(), "opt": {}, "sched": {}, "epoch": 3, "step_in_epoch": 0,
            "best": 0.5, "rng": {}, "torch_rng": torch.get_rng_state(), "model_config": TINY.to_dict(),
            "codec": {}, "train_config": {}}


def test_last_and_best_round_trip_with_weights_only(tmp_path):
    torch.manual_seed(0)
    model = FAN(TINY)
    checkpoint.save(_state(model), tmp_path / "last.pt")
    checkpoint.save_best(_state(model), tmp_path / "best.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]  # no .tmp left
    best = checkpoint.load(tmp_path / "best.pt")
    assert set(best) == set(checkpoint.BEST_KEYS)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in best["model"].items())
    assert checkpoint.load(tmp_path / "last.pt")["epoch"] == 3


def test_init_from_takes_matching_tensors_only(tmp_path):
    torch.manual_seed(0)
    src = FAN(TINY)
    checkpoint.save_best(_state(src), tmp_path / "best.pt")
    dst = FAN(TINY)
    assert checkpoint.init_from(dst, tmp_path / "best.pt").endswith(f"{len(src.state_dict())} tensors")
    assert all(torch.equal(v, dst.state_dict()[k]) for k, v in src.state_dict().items())
    with pytest.raises(ValueError, match="do not fit"):
        checkpoint.init_from(FAN(ModelConfig(stacks=1, width=8, depth=2, input_hw=(64, 64),
                                             heatmap_hw=(16, 16), stem_width=8)), tmp_path / "best.pt")
    with pytest.raises(FileNotFoundError):
        checkpoint.init_from(dst, tmp_path / "nope.pt")


def test_weights_split_into_pieces_under_a_limit_and_join_back(tmp_path):
    mc = ModelConfig(stacks=2, width=16, depth=2, input_hw=(64, 64), heatmap_hw=(16, 16), stem_width=8)
    net = FAN(mc)
    net.stem[0][1].running_var.fill_(1e6)  # beyond fp16's range: stays fp32 (a statistic anyway)
    half = checkpoint.half_weights(net.state_dict())
    assert half["stem.0.0.weight"].dtype == torch.float16
    assert half["stem.0.1.running_var"].dtype == torch.float32
    assert half["stem.0.1.num_batches_tracked"].dtype == torch.int64
    meta = {"model_config": mc.to_dict(), "codec": HeatmapCodec((64, 64), (16, 16)).to_dict(), "best": 0.05}
    paths = checkpoint.save_pieces(half, tmp_path, "teacher", 40_000, meta)
    assert len(paths) > 2 and all(p.stat().st_size < 40_000 for p in paths)
    ck = checkpoint.join_pieces(list(reversed(paths)))  # in any order
    assert set(ck["model"]) == set(net.state_dict()) and ck["best"] == 0.05
    (tmp_path / "fan").mkdir()
    checkpoint.save(ck, tmp_path / "fan" / "best.pt")
    loaded, info = load_torch(tmp_path / "fan" / "best.pt")  # as scripts/ship_model.py reads it
    assert info.model == mc and info.name == "fan"
    for k, v in net.state_dict().items():
        assert torch.allclose(loaded.state_dict()[k].float(), v.float(), rtol=1e-3, atol=1e-3), k
    with pytest.raises(ValueError, match="missing"):
        checkpoint.join_pieces(paths[1:])
    (tmp_path / "other").mkdir()
    other = checkpoint.save_pieces(half, tmp_path / "other", "teacher", 40_000,
                                   dict(meta, codec=HeatmapCodec((64, 64), (16, 16), sigma=1.0).to_dict()))
    with pytest.raises(ValueError, match="another model"):
        checkpoint.join_pieces([paths[0], other[1]] + paths[2:])
    with pytest.raises(ValueError, match="more than a piece"):
        checkpoint.save_pieces(half, tmp_path, "big", 9_000, meta)
