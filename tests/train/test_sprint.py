"""The timed GPU run's parts on the CPU: its schedule, its sampling, its validation (the same
numbers as `train.validation.validate`), and the distillation targets."""
from pathlib import Path

import numpy as np
import pytest
import torch

from tracker.core import codec_torch
from tracker.core.codec import HeatmapCodec
from tracker.core.model import FAN
from tracker.core.model_config import ModelConfig
from tracker.core.modelfile import DEFAULT_MODEL, DEFAULT_PRESET
from train.cache import Cache
from train.device_data import DeviceData, evaluate
from train.pack import Pack, build_from_data
from train.sprint import Sprint, SprintConfig
from train.targets import encode_points, ensemble_targets, resample, student_targets
from train.timed import Schedule, lr_factor, run_phase
from train.validation import validate

from .conftest import FIXTURES

SOURCES = [("300w_lfpw", "images", "stills", True), ("videos", "videos", ".", False)]
TINY = ModelConfig(stacks=1, width=16, depth=2, input_hw=(64, 64), heatmap_hw=(16, 16), stem_width=8)


@pytest.fixture(scope="module")
def pack_dir(tmp_path_factory) -> Path:
    """The fixture faces packed as 96-px crops at the cache's margin of 1.5 (canonical 64 px)."""
    folder = tmp_path_factory.mktemp("pack")
    build_from_data(FIXTURES, folder, 400_000, side=96, margin=1.5, sources=SOURCES, per_clip=4, quality=95)
    return folder


@pytest.fixture(scope="module")
def pack(pack_dir) -> Pack:
    return Pack.load(pack_dir)


def test_the_schedule_warms_up_then_decays_to_its_floor():
    f = [lr_factor(t, 0.05, 0.02) for t in np.linspace(0, 1, 101)]
    assert f[0] == 0.01 and abs(f[5] - 1) < 1e-9 and abs(f[-1] - 0.02) < 1e-9
    assert all(a >= b for a, b in zip(f[5:], f[6:])) and all(a <= b for a, b in zip(f[:5], f[1:6]))


def test_humans_are_drawn_their_share_and_validation_is_the_identity_split(pack):
    cfg = SprintConfig(human_share=0.8, val_fraction=0.3).train_config(pack.names)
    assert abs(sum(cfg.source_weights.values()) - 1) < 1e-9 and abs(cfg.source_weights["300w_lfpw"] - 0.8) < 1e-9
    data = DeviceData.from_pack(pack, cfg, torch.device("cpu"))
    assert data.images.shape == (len(pack), 3, 96, 96) and data.images.dtype == torch.uint8
    groups = set(pack.group[data.val_idx.numpy()])
    assert groups == {"300w_lfpw/300w_indoor"}  # the hash's pick at 0.3, as train.sampling.split's
    drawn = data.draw(torch.Generator().manual_seed(0), 4000)
    human = torch.as_tensor(pack.source)[drawn] == 0
    assert abs(float(human.float().mean()) - 0.8) < 0.03
    assert not set(drawn.tolist()) & set(data.val_idx.tolist())
    assert data.weight[torch.as_tensor(pack.source) == 1].eq(0.5).all()  # teacher labels weigh 0.5


def test_validation_gives_train_validations_numbers(pack):
    """On a pack at the cache's margin the canonical crop is an integer shift of the pack crop:
    the GPU validation and `train.validation.validate` see the same pixels and must agree."""
    cfg = SprintConfig(val_fraction=0.7).train_config(pack.names)  # both still groups
    data = DeviceData.from_pack(pack, cfg, torch.device("cpu"))
    torch.manual_seed(0)
    model = FAN(TINY).eval()
    codec = HeatmapCodec((64, 64), (16, 16))
    cache = Cache(pack.images(), pack.points, pack.source, pack.group, pack.names)
    want = validate(model, codec, cache, data.val_idx.numpy())
    got = evaluate(model, codec, data)
    assert len(data.val_idx) == 7 and set(got) == set(want)
    for k in want:
        assert got[k] == pytest.approx(want[k], rel=1e-4, abs=1e-6), k


def test_student_targets_carry_the_teachers_points_to_the_students_heatmaps():
    ct, cs = HeatmapCodec((64, 64), (16, 16)), HeatmapCodec((32, 32), (8, 8))
    xy = torch.tensor([[[20.3, 30.7], [40.2, 11.9]]])  # teacher input pixels
    hm_t = codec_torch.encode(torch.as_tensor((xy.numpy() + 0.5) / 4 - 0.5), ct.heatmap_hw, ct.sigma)
    got = student_targets(hm_t, ct, cs)
    torch.testing.assert_close(got, encode_points(xy, ct, cs), atol=0.02, rtol=0)
    back, _ = codec_torch.decode(got)  # in student heatmap pixels
    want = (xy + 0.5) / 8 - 0.5  # teacher input -> student input (/2) -> its heatmap (/4)
    assert float((back - want).abs().max()) < 0.05  # the local soft-argmax's own bias on 8 x 8 maps


def test_an_ensembles_targets_sit_at_its_teachers_mean_point():
    """Two teachers of different input sizes place a point apart; the student's target peaks
    at their mean, carried to its own input pixels; one teacher alone is `student_targets`."""
    cs = HeatmapCodec((32, 32), (8, 8))
    teachers = [(HeatmapCodec((64, 64), (16, 16)), torch.tensor([[[20.3, 30.7]]])),
                (HeatmapCodec((32, 32), (8, 8)), torch.tensor([[[12.0, 14.2]]]))]
    hms = [codec_torch.encode(torch.as_tensor((xy.numpy() + 0.5) * c.heatmap_hw[0] / c.input_hw[0] - 0.5),
                              c.heatmap_hw, c.sigma) for c, xy in teachers]
    codecs = [c for c, _ in teachers]
    one = ensemble_targets(hms[:1], codecs[:1], cs)
    torch.testing.assert_close(one, student_targets(hms[0], codecs[0], cs))
    back, _ = codec_torch.decode(ensemble_targets(hms, codecs, cs))  # student heatmap pixels
    mean_input = ((20.3 + 0.5) / 2 - 0.5 + 12.0) / 2, ((30.7 + 0.5) / 2 - 0.5 + 14.2) / 2
    want = (torch.tensor(mean_input) + 0.5) / 4 - 0.5
    assert float((back[0, 0] - want).abs().max()) < 0.05  # the decoder's own bias, as above


@pytest.mark.parametrize("side, tol", [(32, 1e-4), (28, 0.012)])
def test_a_shrunk_teacher_image_keeps_its_points_where_encode_points_puts_them(side, tol):
    """Area averaging for a multiple (exact); antialiased bilinear for 64 -> 28 as for 256 ->
    112 (measured at most 0.0095 student px over these positions; area's windows would be off
    by up to 0.15)."""
    r, err = side / 64, []
    for dx in range(8):
        x = torch.zeros(1, 1, 64, 64)
        x[0, 0, 20:22, 30 + dx:32 + dx] = 1.0  # a dot centred on (30.5 + dx, 20.5)
        small = resample(x, side)[0, 0]
        assert small.shape == (side, side)
        ys, xs = torch.nonzero(small > 1e-6, as_tuple=True)
        w = small[ys, xs]
        centroid = torch.stack([(xs * w).sum() / w.sum(), (ys * w).sum() / w.sum()])
        want = torch.tensor([(30.5 + dx + 0.5) * r - 0.5, (20.5 + 0.5) * r - 0.5])
        err.append(float((centroid - want).abs().max()))
    assert max(err) < tol, err


def test_the_config_refuses_what_it_cannot_run():
    with pytest.raises(ValueError, match="unknown preset"):
        SprintConfig(student="rt-x")
    with pytest.raises(TypeError):
        SprintConfig(augment={"hue": 1})
    t, s = SprintConfig(teacher_model={"width": 32}, student="rt-l-112").models()
    assert t.width == 32 and t.input_hw == (256, 256) and s.input_hw == (112, 112)
    assert SprintConfig().student == DEFAULT_PRESET  # the sprint distils the tracker's default
    assert Path(SprintConfig().student_init).name == f"{DEFAULT_MODEL}.pt"


@pytest.mark.parametrize("siamese", [True, False])
def test_steps_run_under_bf16_autocast(pack_dir, tmp_path, siamese):
    """The GPU run's bf16 path, on the CPU: losses finite, gradients reach every stack."""
    cfg = SprintConfig(teacher_model={"stacks": 2, "width": 16, "depth": 2, "input_hw": (64, 64),
                                      "heatmap_hw": (16, 16), "stem_width": 8},
                       student_model={"stacks": 1, "width": 8, "depth": 2, "input_hw": (32, 32),
                                      "heatmap_hw": (8, 8), "stem_width": 8},
                       student_init=None, amp="bf16", siamese=siamese, val_fraction=0.3)
    run = Sprint(cfg, pack_dir, tmp_path)
    assert run.amp and run.data.side == 96
    teacher = run.new_model(run.mc_t)
    loss = run.teacher_loss(teacher)(3)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in teacher.heads.parameters())
    student = run.new_model(run.mc_s)
    teacher.eval().zero_grad(set_to_none=True)
    d = run.distil_loss(student, teacher)(3)
    assert torch.isfinite(d)
    d.backward()
    assert all(p.grad is None for p in teacher.parameters())  # the teacher only teaches
    assert all(p.grad is not None for p in student.heads.parameters())


def test_a_diverged_phase_restores_its_weights_and_halves_the_rate():
    model = FAN(TINY)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    calls = []

    def loss_fn(b: int) -> torch.Tensor:
        calls.append(b)
        return model.heads[0].weight.sum() * float("nan")

    rows = []
    last = run_phase("t", model, loss_fn, 2, 1e-3, 0.5, Schedule(eval_every=0.3), rows.append,
                     lambda: {"val_nme": 0.0})
    assert calls and rows and "diverged" in rows[0] and last is rows[-1]
    for k, v in before.items():
        assert torch.equal(model.state_dict()[k], v), k
