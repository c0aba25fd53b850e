"""What travels with the weights (tracker/core/modelfile.py): ModelInfo, input normalisation, the ONNX
metadata and the torch checkpoints written by engines/export.py; model files and the onnxruntime
backend need no torch."""
import json
import pickle
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.tracker.core.payloads import Payload, payload_checkpoint
from tracker.core.codec import HeatmapCodec
from tracker.core.geometry import CROP_RATIO
from tracker.core.model import FAN
from tracker.core.model_config import PRESETS, ModelConfig
from tracker.core.modelfile import (
    DEFAULT_PRESET,
    INPUT_NAME,
    METADATA_KEY,
    OUTPUT_NAME,
    ModelFileError,
    ModelInfo,
    default_model_path,
    load_torch,
    read_onnx_info,
)

TINY = ModelConfig(stacks=1, width=16, depth=2, input_hw=(64, 64), heatmap_hw=(16, 16), stem_width=8)


def _info(cfg=TINY, **kw):
    return ModelInfo("tiny", cfg, HeatmapCodec(cfg.input_hw, cfg.heatmap_hw), **kw)


@pytest.fixture(scope="module")
def tiny_net():
    torch.manual_seed(0)
    net = FAN(TINY)
    # non-trivial BN statistics, so that a wrong state dict shows in the outputs
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return net.eval()


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory, tiny_net):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from tracker.engines.export import export_onnx

    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    diff = export_onnx(tiny_net, _info(), path)
    assert diff < 1e-4
    return path


def test_model_files_and_onnxruntime_import_without_torch():
    code = ("import sys, tracker.core.modelfile, tracker.core.model_config, "
            "tracker.engines.onnxruntime_backend, tracker.engines.registry; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


# --- ModelInfo ----------------------------------------------------------------------------------

def test_model_info_json_round_trip():
    cfg = ModelConfig(stacks=1, width=32, depth=2, input_hw=(128, 96), heatmap_hw=(32, 24),
                      mean=(0.4, 0.5, 0.6), std=(0.2, 0.3, 0.4))
    codec = HeatmapCodec((128, 96), (32, 24), sigma=1.5, encoding="round", decoder="argmax_shift",
                         window=3, tau=5.0)
    info = ModelInfo("odd", cfg, codec, scheme="wflw98", crop_ratio=1.3)
    back = ModelInfo.from_json(info.to_json())
    assert back == info
    assert back.model.input_hw == (128, 96) and back.codec.heatmap_hw == (32, 24)


def test_model_info_offsets_travel_as_json_and_are_checked():
    offsets = tuple(np.round(np.random.default_rng(0).normal(0, 0.01, 2 * TINY.n_points), 6))
    info = _info(offsets=offsets)
    back = ModelInfo.from_json(info.to_json())
    assert back == info and back.point_offsets.shape == (TINY.n_points, 2)
    np.testing.assert_array_equal(back.point_offsets.ravel(), offsets)
    assert _info().point_offsets is None and "offsets" not in _info().to_json()
    with pytest.raises(ModelFileError, match="offsets must hold 2 x 68 numbers, got 3"):
        ModelInfo.from_json(_edited(lambda d: d.update(offsets=[0.1, 0.2, 0.3])))
    with pytest.raises(ModelFileError, match=r"field 'offsets\[1\]' must be a number"):
        ModelInfo.from_json(_edited(lambda d: d.update(offsets=[0.1, "x"] * 68)))


def test_rewriting_a_model_files_info_keeps_its_weights(tmp_path, tiny_net, tiny_onnx):
    import shutil

    from tracker.engines.export import rewrite_info, save_shipped

    new = _info(offsets=(0.01, -0.02) * TINY.n_points)
    save_shipped(tiny_net, _info(), tmp_path / "tiny.pt")
    shutil.copy(tiny_onnx, tmp_path / "tiny.onnx")
    before = torch.load(tmp_path / "tiny.pt", weights_only=True)["state_dict"]
    for suffix in (".pt", ".onnx"):
        rewrite_info(tmp_path / f"tiny{suffix}", new)
    assert read_onnx_info(tmp_path / "tiny.onnx") == new and load_torch(tmp_path / "tiny.pt")[1] == new
    after = torch.load(tmp_path / "tiny.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(before[k], after[k]) for k in before)
    import onnx
    from onnx.numpy_helper import to_array

    a, b = onnx.load(str(tiny_onnx)), onnx.load(str(tmp_path / "tiny.onnx"))
    assert len(a.graph.initializer) > 10 and len(a.graph.initializer) == len(b.graph.initializer)
    for ta, tb in zip(a.graph.initializer, b.graph.initializer):
        np.testing.assert_array_equal(to_array(ta), to_array(tb))
    torch.save({"model_config": TINY.to_dict(), "model": tiny_net.state_dict()}, tmp_path / "run.pt")
    with pytest.raises(ValueError, match="not a shipped model"):
        rewrite_info(tmp_path / "run.pt", new)


def test_model_info_defaults_for_older_files():
    text = _info().to_json().replace(', "scheme": "ibug68"', "").replace(
        f', "crop_ratio": {CROP_RATIO}', "")
    assert "scheme" not in text and "crop_ratio" not in text
    back = ModelInfo.from_json(text)
    assert back.scheme == "ibug68" and back.crop_ratio == CROP_RATIO


def test_normalise_shape_dtype_and_values():
    info = _info(ModelConfig(stacks=1, width=16, depth=2, input_hw=(64, 64), heatmap_hw=(16, 16),
                             mean=(0.5, 0.25, 0.0), std=(0.25, 0.5, 1.0)))
    crops = np.zeros((2, 4, 5, 3), np.uint8)  # (B, H, W, 3) RGB
    crops[0, 1, 2] = [255, 51, 102]
    x = info.normalise(crops)
    assert x.shape == (2, 3, 4, 5) and x.dtype == np.float32 and x.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(x[0, :, 1, 2], [(1 - 0.5) / 0.25, (0.2 - 0.25) / 0.5, 0.4], rtol=1e-6)
    np.testing.assert_allclose(x[1, :, 0, 0], [-2.0, -0.5, 0.0])


def test_default_model_path():
    p = default_model_path()
    assert p.name == "rt-sep-kd.onnx" and p.parent.name == "models" and p.parent.parent.name == "tracker"
    assert default_model_path(".pt").name == "rt-sep-kd.pt"


# --- ONNX ---------------------------------------------------------------------------------------

def test_read_onnx_info_of_an_export(tiny_onnx):
    assert read_onnx_info(tiny_onnx) == _info()
    assert read_onnx_info(str(tiny_onnx)).model.heatmap_hw == (16, 16)


def test_exported_model_runs_with_its_own_metadata(tiny_onnx, tiny_net):
    import onnxruntime as ort

    info = read_onnx_info(tiny_onnx)
    sess = ort.InferenceSession(str(tiny_onnx), providers=["CPUExecutionProvider"])
    crops = np.random.default_rng(0).integers(0, 256, (3, *info.model.input_hw, 3), dtype=np.uint8)
    x = info.normalise(crops)
    out = sess.run([OUTPUT_NAME], {INPUT_NAME: x})[0]  # dynamic batch: 3
    assert out.shape == (3, 68, 16, 16)
    with torch.no_grad():
        np.testing.assert_allclose(out, tiny_net(torch.from_numpy(x)).numpy(), atol=1e-4)
    xy, score = info.codec.decode(out)
    assert xy.shape == (3, 68, 2) and score.shape == (3, 68)


def test_read_onnx_info_errors(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    with pytest.raises(ModelFileError, match=r"nope\.onnx: no such model file"):
        read_onnx_info(tmp_path / "nope.onnx")
    (tmp_path / "text.onnx").write_text("this is not a protobuf\n" * 10)
    with pytest.raises(ModelFileError, match=r"text\.onnx: not a readable ONNX model"):
        read_onnx_info(tmp_path / "text.onnx")

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph)
    onnx.save(model, str(tmp_path / "plain.onnx"))
    with pytest.raises(ModelFileError, match=rf"plain\.onnx: no '{METADATA_KEY}' metadata"):
        read_onnx_info(tmp_path / "plain.onnx")

    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, '{"name": "x"}'
    onnx.save(model, str(tmp_path / "damaged.onnx"))
    with pytest.raises(ModelFileError, match=r"damaged\.onnx: damaged"):
        read_onnx_info(tmp_path / "damaged.onnx")


def _with_metadata(src, dst, text: str):
    """A copy of the ONNX model `src` at `dst` whose ModelInfo metadata is `text`."""
    import onnx

    model = onnx.load(str(src))
    for entry in model.metadata_props:
        if entry.key == METADATA_KEY:
            entry.value = text
    onnx.save(model, str(dst))
    return dst


def _edited(change) -> str:
    """The tiny model's metadata JSON after `change(d)` edits its dict in place."""
    d = json.loads(_info().to_json())
    change(d)
    return json.dumps(d)


BAD_METADATA = {
    "name": (lambda d: d.update(name=5), "field 'name' must be a string, got 5"),
    "width": (lambda d: d["model"].update(width="96"), "field 'model.width' must be an integer, got '96'"),
    "stacks_bool": (lambda d: d["model"].update(stacks=True),
                    "field 'model.stacks' must be an integer, got True"),
    "hw_short": (lambda d: d["model"].update(input_hw=[64]),
                 r"field 'model.input_hw' must be a list of 2 integers, got \[64\]"),
    "hw_text": (lambda d: d["model"].update(input_hw="64x64"),
                "field 'model.input_hw' must be a list of 2 integers, got '64x64'"),
    "hw_float": (lambda d: d["model"].update(input_hw=[64.5, 64]),
                 r"field 'model.input_hw\[0\]' must be an integer, got 64.5"),
    "mean_item": (lambda d: d["model"].update(mean=[0.5, "a", 0.5]),
                  r"field 'model.mean\[1\]' must be a number, got 'a'"),
    "sigma_nan": (lambda d: d["codec"].update(sigma=float("nan")),
                  "field 'codec.sigma' must be a number, got nan"),
    "sigma_huge": (lambda d: d["codec"].update(sigma=10**400),
                   "field 'codec.sigma' must be a number, got 10{400}"),
    "decoder": (lambda d: d["codec"].update(decoder=3), "field 'codec.decoder' must be a string, got 3"),
    "window": (lambda d: d["codec"].update(window=4),
               "field 'codec': window must be a positive odd number, got 4"),
    "crop_text": (lambda d: d.update(crop_ratio="1.1"), "field 'crop_ratio' must be a number, got '1.1'"),
    "crop_negative": (lambda d: d.update(crop_ratio=-1), "field 'crop_ratio' must be positive, got -1.0"),
    "scheme_null": (lambda d: d.update(scheme=None), "field 'scheme' must be a string, got None"),
    "model_list": (lambda d: d.update(model=[]), "field 'model' must be a JSON object, got list"),
    "unknown": (lambda d: d["model"].update(extra=1), "unknown field 'model.extra'"),
    "missing_codec": (lambda d: d.pop("codec"), "field 'codec' is missing"),
    "codec_differs": (lambda d: d["codec"].update(heatmap_hw=[32, 32], input_hw=[128, 128]),
                      r"field 'codec.input_hw' \(128, 128\) differs from 'model.input_hw' \(64, 64\)"),
}


@pytest.mark.parametrize("case", list(BAD_METADATA))
def test_onnx_metadata_of_the_wrong_type_names_the_field(tiny_onnx, tmp_path, case):
    change, message = BAD_METADATA[case]
    bad = _with_metadata(tiny_onnx, tmp_path / "bad.onnx", _edited(change))
    with pytest.raises(ModelFileError, match=rf"^{re.escape(str(bad))}: damaged "
                                             rf"'{re.escape(METADATA_KEY)}' metadata \({message}\)$"):
        read_onnx_info(bad)


def test_onnx_metadata_that_is_no_json_object(tiny_onnx, tmp_path):
    for text, message in [("{not json", "not JSON"), ("[1, 2]", "the metadata must be a JSON object, got list"),
                          ("null", "the metadata must be a JSON object, got NoneType")]:
        bad = _with_metadata(tiny_onnx, tmp_path / "bad.onnx", text)
        with pytest.raises(ModelFileError, match=rf"bad\.onnx: damaged .* metadata \({message}"):
            read_onnx_info(bad)


def test_onnx_metadata_of_older_files_takes_the_defaults(tiny_onnx, tmp_path):
    def older(d):  # written before stem_kernel, scheme and crop_ratio were fields
        del d["model"]["stem_kernel"], d["scheme"], d["crop_ratio"]

    old = _with_metadata(tiny_onnx, tmp_path / "old.onnx", _edited(older))
    assert read_onnx_info(old) == _info()


def test_torch_metadata_is_parsed_the_same_way(tmp_path, tiny_net):
    torch.save({"model_info": _edited(lambda d: d["model"].update(width=16.0)),
                "state_dict": tiny_net.state_dict()}, tmp_path / "bad.pt")
    with pytest.raises(ModelFileError, match=r"bad\.pt: damaged metadata \(field 'model\.width' "
                                             r"must be an integer, got 16\.0\)"):
        load_torch(tmp_path / "bad.pt")
    torch.save({"model_config": {**TINY.to_dict(), "depth": "2"}, "codec": _info().codec.to_dict(),
                "model": tiny_net.state_dict()}, tmp_path / "run.pt")
    with pytest.raises(ModelFileError, match=r"field 'model_config\.depth' must be an integer"):
        load_torch(tmp_path / "run.pt")


# --- torch checkpoints --------------------------------------------------------------------------

def test_load_torch_round_trip_full_precision(tmp_path, tiny_net):
    from tracker.engines.export import save_shipped

    save_shipped(tiny_net, _info(), tmp_path / "tiny.pt", half=False)
    net, info = load_torch(tmp_path / "tiny.pt")
    assert info == _info() and not net.training
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(net(x), tiny_net(x), atol=0, rtol=0)


def test_load_torch_round_trip_half_precision(tmp_path, tiny_net):
    from tracker.engines.export import save_shipped

    save_shipped(tiny_net, _info(), tmp_path / "tiny16.pt")
    net, _ = load_torch(tmp_path / "tiny16.pt")
    for name, v in net.state_dict().items():
        ref = tiny_net.state_dict()[name]
        assert v.dtype == ref.dtype  # loaded back as float32
        if ref.is_floating_point():
            torch.testing.assert_close(v, ref.half().float(), atol=0, rtol=0)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(net(x), tiny_net(x), atol=0.05, rtol=0.02)


def test_load_torch_training_checkpoint(tmp_path, tiny_net):
    run = tmp_path / "my_run"
    run.mkdir()
    codec = HeatmapCodec((64, 64), (16, 16), sigma=1.5)
    torch.save({"model_config": TINY.to_dict(), "codec": codec.to_dict(),
                "model": tiny_net.state_dict(), "epoch": 3}, run / "best.pt")
    net, info = load_torch(run / "best.pt")
    assert info.name == "my_run" and info.model == TINY and info.codec == codec


def test_load_torch_errors(tmp_path):
    with pytest.raises(ModelFileError, match=r"nope\.pt: no such model file"):
        load_torch(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"\x00\x01 not a checkpoint")
    with pytest.raises(ModelFileError, match=r"junk\.pt: not a readable torch checkpoint"):
        load_torch(tmp_path / "junk.pt")
    torch.save({"weights": {}}, tmp_path / "other.pt")
    with pytest.raises(ModelFileError, match=r"other\.pt: neither a shipped model"):
        load_torch(tmp_path / "other.pt")
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    with pytest.raises(ModelFileError, match=r"tensor\.pt: neither a shipped model"):
        load_torch(tmp_path / "tensor.pt")


def test_load_torch_checks_what_the_checkpoint_holds(tmp_path, tiny_net):
    info = _info()
    state = tiny_net.state_dict()
    cases = {
        "info_dict.pt": ({"model_info": {"name": "tiny"}, "state_dict": state},
                         r"damaged metadata \('model_info' must be a JSON string, got dict\)"),
        "no_codec.pt": ({"model_config": TINY.to_dict(), "model": state},
                        r"damaged metadata \(no 'codec' field\)"),
        "bad_config.pt": ({"model_config": {**TINY.to_dict(), "width": 18},
                           "codec": info.codec.to_dict(), "model": state}, "multiple of 4"),
        "no_weights.pt": ({"model_info": info.to_json()}, "not a mapping of names to tensors"),
        "list_weights.pt": ({"model_info": info.to_json(), "state_dict": [1, 2]},
                            "not a mapping of names to tensors"),
        "wrong_weights.pt": ({"model_info": info.to_json(),
                              "state_dict": {**state, "heads.0.bias": torch.zeros(5)}},
                             r"do not fit the network its metadata describes \(.*heads\.0\.bias"),
        "missing_weights.pt": ({"model_info": info.to_json(),
                                "state_dict": {k: v for k, v in state.items() if k != "heads.0.bias"}},
                               r"do not fit .*Missing key"),
    }
    for name, (ck, match) in cases.items():
        torch.save(ck, tmp_path / name)
        with pytest.raises(ModelFileError, match=rf"{name.replace('.', '[.]')}: .*{match}"):
            load_torch(tmp_path / name)


# --- checkpoints that hold more than weights ----------------------------------------------------

def test_the_payload_is_live(tmp_path):
    """The fixture is a real attack: unpickled the ordinary way, its payload runs."""
    marker = tmp_path / "payload-ran"
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.is_file()


@pytest.mark.parametrize("where", ["beside", "in", "whole"])
def test_a_checkpoint_with_a_pickled_payload_is_refused_and_never_runs(tmp_path, tiny_net, where):
    from tracker.engines.export import save_shipped

    save_shipped(tiny_net, _info(), tmp_path / "tiny.pt")
    marker = tmp_path / "payload-ran"
    evil = payload_checkpoint(tmp_path / "evil.pt", marker, tmp_path / "tiny.pt", where)
    refused = (rf"^{re.escape(str(evil))}: refused: it holds Python objects other than tensors "
               r"and plain data \((posix|os|nt)\.system\); only weights are loaded, so nothing in "
               r"it was run$")
    with pytest.raises(ModelFileError, match=refused):
        load_torch(evil)
    assert not marker.exists()


def test_a_plain_pickle_with_a_payload_never_runs(tmp_path):
    marker = tmp_path / "payload-ran"
    plain = tmp_path / "plain.pt"
    plain.write_bytes(pickle.dumps({"model_info": "{}", "x": Payload(marker)}, protocol=2))
    with pytest.raises(ModelFileError, match=r"plain\.pt: (refused|not a readable torch checkpoint)"):
        load_torch(plain)
    assert not marker.exists()


def test_the_bundled_model_holds_only_tensors_and_plain_data():
    path = default_model_path(".pt")
    if not path.is_file():
        pytest.skip("this checkout ships without the bundled model")
    ck = torch.load(path, map_location="cpu", weights_only=True)
    assert set(ck) == {"model_info", "state_dict"} and isinstance(ck["model_info"], str)
    assert all(isinstance(v, torch.Tensor) for v in ck["state_dict"].values())
    net, info = load_torch(path)
    assert info.name == "rt-sep-kd" and info == read_onnx_info(path.with_suffix(".onnx"))
    assert info.model == PRESETS[DEFAULT_PRESET]  # the network the GPU sprint warm-starts from it
