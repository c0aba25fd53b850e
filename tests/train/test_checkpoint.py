import pytest
import torch

from tracker.core.model import FAN
from tracker.core.model_config import ModelConfig
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
