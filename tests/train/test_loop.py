import copy
from dataclasses import replace

import numpy as np
import pytest
import torch

from tracker.core.model_config import ModelConfig
from train.augment import augment_batch
from train.config import TrainConfig
from train.loop import Trainer
from train.loss import heatmap_l2
from train.targets import ensemble_targets, student_targets, to_tensor

TINY = ModelConfig(stacks=1, width=16, depth=2, input_hw=(64, 64), heatmap_hw=(16, 16), stem_width=8)


def _cfg(tmp_path, **kw):
    base = TrainConfig(preset="rt-s", out=str(tmp_path / "run"), epochs=2, samples_per_epoch=8,
                       batch=4, lr=3e-3, milestones=(10,), source_weights={"300w_lfpw": 0.5, "videos": 0.5},
                       human_sources=("300w_lfpw",), val_fraction=0.3, threads=1, checkpoint_every=1)
    return replace(base, **kw)


def _fit_one_batch(tr: Trainer, idx: np.ndarray, steps: int = 40) -> list[float]:
    """The losses of `steps` steps on batch `idx`, with the same augmentation each step."""
    losses = []
    for _ in range(steps):
        tr.rng = np.random.default_rng(0)
        losses.append(tr.train_step(idx))
    return losses


def test_loss_falls_on_real_faces(tmp_path, fixture_cache):
    tr = Trainer(_cfg(tmp_path), fixture_cache, TINY)
    losses = _fit_one_batch(tr, tr.train_idx[:4])
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:3])


def test_training_in_channels_last_computes_what_the_default_layout_does(tmp_path, fixture_cache):
    # the trainer keeps models and inputs channels last for speed (train.targets.MEMORY_FORMAT):
    # its inputs hold the same values, and its model the same loss and gradients as in the
    # default layout, up to float rounding (measured: 1e-5 of the gradients' norm at most, on
    # generated inputs; real crops' constant borders put ReLUs at exactly zero, where the two
    # layouts' rounding picks different subgradients)
    sep2 = replace(TINY, block="separable", stacks=2)
    tr = Trainer(_cfg(tmp_path), fixture_cache, sep2)
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in tr.model.parameters() if p.dim() == 4)
    imgs = fixture_cache.images[:4, 64:128, 64:128]
    x = to_tensor(imgs, sep2)
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(x, torch.from_numpy(sep2.normalise(imgs)))
    torch.manual_seed(0)
    x, target = torch.randn(4, 3, 64, 64), torch.rand(4, 68, 16, 16)
    plain = copy.deepcopy(tr.model).to(memory_format=torch.contiguous_format)
    results = []
    for net, inp in ((tr.model, x.contiguous(memory_format=torch.channels_last)), (plain, x)):
        net.train()
        net.zero_grad()
        loss = sum(heatmap_l2(o, target, torch.ones(4)) for o in net.forward_all(inp))
        loss.backward()
        results.append((float(loss), torch.cat([p.grad.flatten() for p in net.parameters()])))
    (loss_cl, grad_cl), (loss_plain, grad_plain) = results
    assert loss_cl == pytest.approx(loss_plain, rel=1e-6)
    assert float((grad_cl - grad_plain).norm() / grad_plain.norm()) < 3e-5


def test_siamese_step_runs_and_learns(tmp_path, fixture_cache):
    tr = Trainer(_cfg(tmp_path, siamese=True), fixture_cache, TINY)
    idx = tr.train_idx[:4]
    losses = []
    for _ in range(30):
        tr.rng = np.random.default_rng(0)
        losses.append(tr.train_step(idx))
    assert np.isfinite(losses).all()
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:3])


def test_resume_continues_from_the_checkpoint(tmp_path, fixture_cache):
    cfg = _cfg(tmp_path)
    tr = Trainer(cfg, fixture_cache, TINY)
    tr.fit(max_seconds=0)  # one step, then stop with a checkpoint
    assert (tmp_path / "run" / "last.pt").exists() and tr.step_in_epoch == 1
    again = Trainer(cfg, fixture_cache, TINY)
    assert again.step_in_epoch == 1 and again.epoch == 0
    for k, v in tr.model.state_dict().items():
        assert torch.equal(v, again.model.state_dict()[k])
    assert again.rng.bit_generator.state == tr.rng.bit_generator.state
    again.fit()
    assert again.epoch == 2
    rows = (tmp_path / "run" / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 3 and rows[0].startswith("epoch,")
    assert (tmp_path / "run" / "best.pt").exists()


def test_init_starts_from_another_runs_weights_with_a_fresh_schedule(tmp_path, fixture_cache):
    first = Trainer(_cfg(tmp_path), fixture_cache, TINY)
    first.fit()
    tuned = Trainer(_cfg(tmp_path, out=str(tmp_path / "tuned"), init=str(tmp_path / "run" / "last.pt"),
                         lr=1e-4), fixture_cache, TINY)
    assert tuned.epoch == 0 and tuned.step_in_epoch == 0 and tuned.opt.state == {}
    assert tuned.opt.param_groups[0]["lr"] == 1e-4
    for k, v in first.model.state_dict().items():
        assert torch.equal(v, tuned.model.state_dict()[k])
    other = ModelConfig(stacks=1, width=8, depth=2, input_hw=(64, 64), heatmap_hw=(16, 16), stem_width=8)
    with pytest.raises(ValueError, match="do not fit this run's model"):
        Trainer(_cfg(tmp_path, out=str(tmp_path / "bad"), init=str(tmp_path / "run" / "last.pt")),
                fixture_cache, other)
    with pytest.raises(FileNotFoundError):
        Trainer(_cfg(tmp_path, out=str(tmp_path / "bad2"), init=str(tmp_path / "nope.pt")), fixture_cache, TINY)


def test_a_two_stack_model_starts_from_a_one_stack_models_first_stack(tmp_path, fixture_cache):
    first = Trainer(_cfg(tmp_path), fixture_cache, TINY)
    first.fit()
    two = replace(TINY, stacks=2)
    tuned = Trainer(_cfg(tmp_path, out=str(tmp_path / "two"), init=str(tmp_path / "run" / "best.pt")),
                    fixture_cache, two)
    mine = tuned.model.state_dict()
    theirs = torch.load(tmp_path / "run" / "best.pt", weights_only=True)["model"]
    assert all(torch.equal(v, mine[k]) for k, v in theirs.items())  # stem, stack 0, head 0
    assert any(k.startswith("hourglasses.1.") for k in mine)
    assert tuned.init_report.endswith(f"{len(theirs)} of {len(mine)} tensors")


def test_augmentation_settings_come_from_the_config(tmp_path, fixture_cache):
    tr = Trainer(_cfg(tmp_path, augment={"channel_shuffle": 0.5, "rotation_deg": 10}), fixture_cache, TINY)
    assert tr.aug.channel_shuffle == 0.5 and tr.aug.rotation_deg == 10 and tr.aug.flip == 0.5
    with pytest.raises(ValueError, match="unknown settings"):
        _cfg(tmp_path, augment={"hue": 1})


def test_the_adaptive_wing_loss_trains_too(tmp_path, fixture_cache):
    tr = Trainer(_cfg(tmp_path, loss="awing"), fixture_cache, TINY)
    losses = _fit_one_batch(tr, tr.train_idx[:4])
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:3])
    with pytest.raises(ValueError, match="loss 'wing'"):
        _cfg(tmp_path, loss="wing")


def test_the_decoded_points_loss_trains_too(tmp_path, fixture_cache):
    """`decoded_weight` adds `decoded_l1` to the step: the same batch at the same weights costs
    more, the run learns, and a Siamese run refuses it."""
    plain = Trainer(_cfg(tmp_path / "plain"), fixture_cache, TINY)
    tr = Trainer(_cfg(tmp_path / "decoded", decoded_weight=1.0), fixture_cache, TINY)
    idx = tr.train_idx[:4]
    plain.rng = np.random.default_rng(0)
    first_plain = plain.train_step(idx)
    losses = _fit_one_batch(tr, idx)
    assert losses[0] > first_plain  # same weights, same batch, one more non-negative term
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:3])
    with pytest.raises(ValueError, match="Siamese"):
        _cfg(tmp_path, siamese=True, decoded_weight=1.0)
    with pytest.raises(ValueError, match="decoded_weight"):
        _cfg(tmp_path, decoded_weight=-1.0)


def test_weight_decay_shrinks_the_weight_tensors_alone_and_the_run_learns(tmp_path, fixture_cache):
    """`weight_decay`: a step with zero gradients leaves Adam's moments at zero, so all it does is
    the decoupled decay: every convolution and head weight times (1 - lr * decay) exactly,
    biases and batch-norm parameters untouched. Without it the optimiser is plain Adam."""
    assert type(Trainer(_cfg(tmp_path / "plain"), fixture_cache, TINY).opt) is torch.optim.Adam
    tr = Trainer(_cfg(tmp_path / "wd", weight_decay=0.5), fixture_cache, TINY)
    before = {n: p.detach().clone() for n, p in tr.model.named_parameters()}
    for p in tr.model.parameters():
        p.grad = torch.zeros_like(p)
    tr.opt.step()
    factor = 1 - tr.cfg.lr * 0.5
    decayed = 0
    for n, p in tr.model.named_parameters():
        if p.ndim > 1:
            torch.testing.assert_close(p.detach(), before[n] * factor)
            decayed += int(not torch.equal(p, before[n]))
        else:
            assert torch.equal(p, before[n]), n
    assert decayed == sum(p.ndim > 1 for p in tr.model.parameters())
    losses = _fit_one_batch(tr, tr.train_idx[:4])
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:3])
    with pytest.raises(ValueError, match="weight_decay"):
        _cfg(tmp_path, weight_decay=-0.1)


def test_teacher_part_weights_weigh_the_teachers_jaw_in_the_step(tmp_path, fixture_cache):
    """The teacher's jaw points at weight 1 (others 0.5) change the step's loss on a batch
    with teacher faces, and the run learns as the plain one does."""
    plain = Trainer(_cfg(tmp_path / "plain"), fixture_cache, TINY)
    parts = Trainer(_cfg(tmp_path / "parts", teacher_part_weights={"jaw": 1.0}), fixture_cache, TINY)
    assert parts.loss_w.shape == (len(fixture_cache.names), 68)
    teacher = [i for i in parts.train_idx if fixture_cache.names[fixture_cache.source[i]] == "videos"]
    idx = np.array(teacher[:4])
    plain.rng = np.random.default_rng(0)
    first_plain = plain.train_step(idx)
    losses = _fit_one_batch(parts, idx)
    assert losses[0] != pytest.approx(first_plain, rel=1e-3)  # same weights, same batch
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:3])


@pytest.mark.parametrize("student_side", [64, 48])
def test_distillation_pulls_the_student_to_the_teachers_points(tmp_path, fixture_cache, student_side):
    """The 64-px teacher teaches a student of its own size, and one on 48 px that sees the
    teacher's points through `resample` (as rt-xl on 128 px teaches rt-l-112)."""
    teacher = Trainer(_cfg(tmp_path, out=str(tmp_path / "teacher"), seed=5), fixture_cache, TINY)
    teacher._save_last()
    cfg = _cfg(tmp_path, distil_from=str(tmp_path / "teacher" / "last.pt"), distil_weight=50.0)
    mc = replace(TINY, input_hw=(student_side,) * 2, heatmap_hw=(student_side // 4,) * 2)
    tr = Trainer(cfg, fixture_cache, mc)
    idx = tr.train_idx[:4]
    imgs, _, _ = augment_batch(np.random.default_rng(0), tr.cache, idx, tr.aug, student_side)

    def distil_loss() -> float:  # the student's heatmaps against the teacher's points, same crops
        with torch.no_grad():
            return float(tr._distil_loss(imgs, tr.net(to_tensor(imgs, mc)), len(idx)))

    before = distil_loss()
    _fit_one_batch(tr, idx)  # these very crops at every step
    assert distil_loss() < 0.2 * before  # measured 0.15 (64 px), 0.18 (48 px)


def test_an_ensemble_of_teachers_teaches_the_mean_of_their_points(tmp_path, fixture_cache):
    """Two teachers in `distil_from`: the distillation loss is the one against the targets of
    their averaged points, which differs from either teacher's own."""
    paths = []
    for seed in (5, 6):
        out = tmp_path / f"teacher{seed}"
        Trainer(_cfg(tmp_path, out=str(out), seed=seed), fixture_cache, TINY)._save_last()
        paths.append(str(out / "last.pt"))
    tr = Trainer(_cfg(tmp_path, distil_from=paths), fixture_cache, TINY)
    assert len(tr.teachers) == 2 and tr.cfg.teachers == paths
    idx = tr.train_idx[:4]
    imgs, _, _ = augment_batch(np.random.default_rng(0), tr.cache, idx, tr.aug, TINY.input_hw[0])
    with torch.no_grad():
        x = to_tensor(imgs, TINY)
        outs = tr.net(x)
        both = float(tr._distil_loss(imgs, outs, len(idx)))
        hms = [net(x) for net, _ in tr.teachers]
        codecs = [c for _, c in tr.teachers]
        want = ensemble_targets(hms, codecs, tr.codec)
        ones = torch.ones(len(idx))
        assert both == pytest.approx(float(sum(tr.heatmap_loss(o, want, ones) for o in outs)), rel=1e-5)
        alone = [float(sum(tr.heatmap_loss(o, student_targets(h, c, tr.codec), ones) for o in outs))
                 for h, c in zip(hms, codecs)]
    assert all(abs(both - a) > 1e-3 * both for a in alone)


def test_distillation_refuses_what_it_cannot_teach(tmp_path, fixture_cache):
    with pytest.raises(ValueError, match="no distillation"):
        _cfg(tmp_path, siamese=True, distil_from="x.pt")
    with pytest.raises(ValueError, match="empty list"):
        _cfg(tmp_path, distil_from=[])
    oblong = replace(TINY, input_hw=(64, 48), heatmap_hw=(16, 12))
    Trainer(_cfg(tmp_path, out=str(tmp_path / "teacher")), fixture_cache, oblong)._save_last()
    with pytest.raises(ValueError, match="not square"):
        Trainer(_cfg(tmp_path, distil_from=str(tmp_path / "teacher" / "last.pt")), fixture_cache, TINY)


def test_weight_averaging_is_the_mean_of_the_epochs_weights(tmp_path, fixture_cache):
    """average.pt holds the mean of the weights at the ends of epochs 2 and 3 (batch-norm
    statistics recomputed), the run's own weights are those of a run without averaging, and a
    resume mid-run carries the mean on."""
    from train.averaging import parameters
    from train.checkpoint import load

    plain = Trainer(_cfg(tmp_path / "plain", epochs=3), fixture_cache, TINY)
    ends = []
    while plain.epoch < 3:
        plain.cfg = replace(plain.cfg, epochs=plain.epoch + 1)
        plain.fit()
        ends.append(parameters(plain.model))
    cfg = _cfg(tmp_path / "avg", epochs=3, average_from=2, average_bn_batches=2)
    tr = Trainer(replace(cfg, epochs=2), fixture_cache, TINY)
    tr.fit()  # stop after epoch 2, then resume with the full schedule
    tr = Trainer(cfg, fixture_cache, TINY)
    assert tr.n_averaged == 1
    tr.fit()
    for k, v in parameters(tr.model).items():
        assert torch.equal(v, ends[2][k])  # averaging does not touch the training
    avg = load(tmp_path / "avg" / "run" / "average.pt")
    assert avg["epoch"] == 3 and tr.n_averaged == 2
    for k, v in avg["model"].items():
        if k in ends[2]:
            torch.testing.assert_close(v, (ends[1][k] + ends[2][k]) / 2)
    # batch-norm statistics are the averaged model's own, not the last weights'
    bn = next(k for k in avg["model"] if k.endswith("running_mean"))
    assert not torch.allclose(avg["model"][bn], tr.model.state_dict()[bn])
    rows = (tmp_path / "avg" / "run" / "metrics.csv").read_text().strip().splitlines()
    head = rows[0].split(",")
    nme_col = head.index("avg_val_nme")
    assert rows[1].split(",")[nme_col] == "nan"  # epoch 1, before average_from
    assert float(rows[3].split(",")[nme_col]) == pytest.approx(avg["best"])
    from tracker.core.modelfile import load_torch  # what ship_model and init read

    net, _ = load_torch(tmp_path / "avg" / "run" / "average.pt")
    for k, v in net.state_dict().items():
        assert torch.equal(v, avg["model"][k])
    with pytest.raises(ValueError, match="average_from 4"):
        _cfg(tmp_path, epochs=3, average_from=4)
