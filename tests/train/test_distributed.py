from dataclasses import replace

import numpy as np
import pytest
import torch

from train import syncbn
from train.config import TrainConfig
from train.distributed import SINGLE, AllStacks, Dist, from_env, threads_per_rank, training_module
from train.loop import Trainer
from train.sampling import augment_rng, rank_slice

from .ranks import spawn
from .test_loop import TINY

TWO_STACKS = replace(TINY, stacks=2)  # the training forward returns a list of heatmaps
#: Augmentation that draws from the stream but changes nothing: one process and two ranks
#: then see the same pixels, whatever their streams.
NO_AUGMENT = {"rotation_deg": 0.0, "scale": (1.0, 1.0), "translate": 0.0, "flip": 0.0,
              "colour": (1.0, 1.0), "grey": 0.0, "blur": 0.0}


def _cfg(out, **kw):
    base = TrainConfig(preset="rt-s", out=str(out), epochs=2, samples_per_epoch=8, batch=4, lr=3e-3,
                       milestones=(1,), source_weights={"300w_lfpw": 0.5, "videos": 0.5},
                       human_sources=("300w_lfpw",), teacher_loss_weight=0.5, val_fraction=0.3,
                       threads=1, checkpoint_every=1)
    return replace(base, **kw)


def test_one_process_is_the_reference(monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(k, raising=False)
    d = from_env()
    assert d == SINGLE and d.is_main and not d.parallel and d.device.type == "cpu"
    assert d.mean(2.5) == 2.5 and d.decide(True) and d.broadcast({"a": 1}) == {"a": 1}
    assert d.gather(7) == [7]
    assert isinstance(training_module(torch.nn.Identity(), SINGLE), AllStacks)


def test_threads_are_the_configs_alone_and_a_share_of_the_cores_under_torchrun():
    assert threads_per_rank(6, 1) == 6  # one process: as configured
    assert threads_per_rank(6, 10_000) == 1
    assert 1 <= threads_per_rank(2, 2) <= 2


def test_each_rank_trains_on_its_slice_with_its_own_augmentation_stream():
    idx = np.arange(8)
    assert [rank_slice(idx, r, 4).tolist() for r in range(4)] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    with pytest.raises(ValueError, match="does not split"):
        rank_slice(idx, 0, 3)
    draws = [augment_rng(0, r, 2).random() for r in range(2)] + [np.random.default_rng(0).random()]
    assert len(set(draws)) == 3 and augment_rng(0, 1, 2).random() == draws[1]


def test_a_batch_must_split_over_the_ranks(tmp_path, fixture_cache):
    with pytest.raises(ValueError, match="does not split over 3 ranks"):
        Trainer(_cfg(tmp_path / "run"), fixture_cache, TINY, Dist(rank=1, world=3))


#: plain, Siamese, and per-point label weights (the teacher's jaw apart: each rank's share of
#: the global batch's weight is then the mean of its rows)
MODES = {"plain": {}, "siamese": {"siamese": True}, "parts": {"teacher_part_weights": {"jaw": 2.0}}}


def _batches(cache, n):
    """n global batches of 4 whose halves hold different label weights (human 1, teacher 0.5)."""
    human = np.flatnonzero(cache.source == 0)
    video = np.flatnonzero(cache.source == 1)
    return [np.array([human[i], human[i + 1], video[i], human[i + 2]]) for i in range(n)]


def _train_steps(d, cache, out, batches) -> None:
    """A few steps on given global batches, in each of `MODES`; losses and weights to a file."""
    result = {}
    for mode, kw in MODES.items():
        cfg = _cfg(out / f"{d.world}-{mode}", augment=NO_AUGMENT, val_fraction=0.0, **kw)
        tr = Trainer(cfg, cache, TWO_STACKS, d)
        losses = [tr.train_step(b) for b in batches]
        result[mode] = {"losses": losses, "model": tr.model.state_dict()}
    torch.save(result, out / f"steps-{d.world}-{d.rank}.pt")


def _stop_and_resume(d, cache, out) -> None:
    """A run stopped by rank 0's time limit and resumed, and the same run uninterrupted."""
    cfg = _cfg(out / "stopped")
    first = Trainer(cfg, cache, TINY, d)
    first.fit(max_seconds=0 if d.is_main else None)  # rank 0's clock stops every rank
    assert (first.epoch, first.step_in_epoch) == (0, 1)
    again = Trainer(cfg, cache, TINY, d)  # every rank resumes from rank 0's last.pt
    assert (again.epoch, again.step_in_epoch) == (0, 1)
    assert again.rng.bit_generator.state == first.rng.bit_generator.state  # this rank's stream
    assert again.batch_rng.bit_generator.state == first.batch_rng.bit_generator.state
    again.fit()
    whole = Trainer(replace(cfg, out=str(out / "whole")), cache, TINY, d)
    whole.fit()
    assert again.epoch == whole.epoch == 2
    for k, v in whole.model.state_dict().items():
        assert torch.equal(v, again.model.state_dict()[k]), k


def _batch_norm_input():
    """A global batch (4, 3, 5, 6) for batch norm, and the upstream gradient of its output."""
    g = torch.Generator().manual_seed(0)
    return torch.randn(4, 3, 5, 6, generator=g) * 3 + 2, torch.randn(4, 3, 5, 6, generator=g)


def _batch_norm(d, out) -> None:
    """SyncBatchNorm2d on this rank's half of the batch: output, gradients, running statistics."""
    x, dy = (t[2 * d.rank:2 * d.rank + 2] for t in _batch_norm_input())
    x.requires_grad_(True)
    bn = syncbn.convert(torch.nn.Sequential(torch.nn.BatchNorm2d(3)), d.device)[0]
    y = bn(x)
    (y * dy).sum().backward()
    torch.save({"y": y.detach(), "dx": x.grad, "dw": bn.weight.grad, "db": bn.bias.grad,
                "mean": bn.running_mean, "var": bn.running_var}, out / f"bn-{d.rank}.pt")


def _two_rank_jobs(d, cache, out, batches) -> None:
    _batch_norm(d, out)
    _train_steps(d, cache, out, batches)
    _stop_and_resume(d, cache, out)


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory, fixture_cache):
    """One 2-rank gloo run (spawning costs seconds) of both jobs; the folder they wrote."""
    out = tmp_path_factory.mktemp("ddp")
    batches = _batches(fixture_cache, 3)
    spawn(_two_rank_jobs, 2, fixture_cache, out, batches)
    _train_steps(SINGLE, fixture_cache, out, batches)  # the reference: one process
    return out


@pytest.mark.slow
def test_synchronised_batch_norm_normalises_by_the_global_batch(two_ranks):
    x, dy = _batch_norm_input()
    x.requires_grad_(True)
    bn = torch.nn.BatchNorm2d(3)
    y = bn(x)
    (y * dy).sum().backward()
    r = [torch.load(two_ranks / f"bn-{k}.pt", weights_only=True) for k in range(2)]
    assert torch.allclose(torch.cat([r[0]["y"], r[1]["y"]]), y, atol=1e-5)
    assert torch.allclose(torch.cat([r[0]["dx"], r[1]["dx"]]), x.grad, atol=1e-5)
    # each rank keeps its own weight and bias gradients (DDP averages them); their sum is the batch's
    assert torch.allclose(r[0]["dw"] + r[1]["dw"], bn.weight.grad, atol=1e-4)
    assert torch.allclose(r[0]["db"] + r[1]["db"], bn.bias.grad, atol=1e-4)
    for k in range(2):
        assert torch.allclose(r[k]["mean"], bn.running_mean) and torch.allclose(r[k]["var"], bn.running_var)


@pytest.mark.slow
def test_two_ranks_train_as_one_process_on_the_same_global_batch(two_ranks):
    one = torch.load(two_ranks / "steps-1-0.pt", weights_only=True)
    ranks = [torch.load(two_ranks / f"steps-2-{r}.pt", weights_only=True) for r in range(2)]
    for mode in MODES:
        assert np.allclose(ranks[0][mode]["losses"], one[mode]["losses"], rtol=1e-5)
        assert ranks[0][mode]["losses"] == ranks[1][mode]["losses"]  # the global batch's loss
        for k, v in one[mode]["model"].items():
            assert torch.equal(ranks[0][mode]["model"][k], ranks[1][mode]["model"][k]), k  # replicas agree
            # weights and BN running statistics: the global batch's. Adam divides by each gradient's
            # own scale, so rounding in a near-zero gradient can move a weight by a fraction of lr
            assert torch.allclose(ranks[0][mode]["model"][k], v, rtol=1e-4, atol=3e-4), k


@pytest.mark.slow
def test_two_ranks_stop_at_rank_0s_time_limit_and_resume_as_if_never_stopped(two_ranks):
    stopped, whole = two_ranks / "stopped", two_ranks / "whole"  # asserted on the ranks, here the files
    assert "rank_rngs" in torch.load(stopped / "last.pt", weights_only=True)
    assert sorted(p.name for p in stopped.iterdir()) == ["best.pt", "config.json", "last.pt", "metrics.csv"]
    rows = [r.split(",") for r in (stopped / "metrics.csv").read_text().splitlines()]
    assert len(rows) == 3  # a header and one row per epoch: rank 0 alone writes
    # validation after each epoch is the uninterrupted run's (the loss of epoch 1 covers fewer steps)
    for a, b in zip(rows[1:], [r.split(",") for r in (whole / "metrics.csv").read_text().splitlines()][1:]):
        assert a[4:] == b[4:]
