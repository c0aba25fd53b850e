"""TensorRT backend (engines/tensorrt_backend.py): lazy imports and clear errors without
TensorRT (CI); with a fake TensorRT, that it only loads: without a cached engine it builds
nothing and names the `engines build` command, unless asked to build; on a machine with
TensorRT + pycuda + a GPU, engine parity. (Building and the engine cache:
test_tensorrt_build.py.)"""
import importlib.util
import re
import shlex
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from tracker.core.modelfile import ModelFileError
from tracker.engines import tensorrt_backend as trb
from tracker.engines import tensorrt_build as tb
from tracker.engines.backend import BackendOptions, BackendUnavailable
from tracker.engines.cli import parser
from tracker.engines.registry import load_backend

HAS_TRT = all(importlib.util.find_spec(m) is not None for m in ("tensorrt", "pycuda"))


def test_gpu_modules_import_without_gpu_packages():
    code = ("import sys, tracker.engines.tensorrt_backend, tracker.engines.torch_cuda, "
            "tracker.engines.cuda_decode, tracker.engines.cli, tracker.engines.bench, "
            "tracker.engines.registry; "
            "bad = [m for m in ('tensorrt', 'pycuda', 'cupy') if m in sys.modules]; "
            "assert not bad, bad")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.skipif(HAS_TRT, reason="TensorRT and pycuda are installed here")
def test_construction_without_tensorrt_says_what_to_install(tiny_model):
    with pytest.raises(BackendUnavailable, match="(TensorRT|pycuda).*pip install"):
        trb.TensorRTBackend(tiny_model[0])


def test_model_file_errors_come_first(tmp_path, tiny_model):
    with pytest.raises(ModelFileError, match="no such model file"):
        trb.TensorRTBackend(tmp_path / "missing.onnx")
    with pytest.raises(ValueError, match=r"\.onnx"):
        trb.TensorRTBackend(tiny_model[1])  # the .pt
    with pytest.raises(ValueError, match="runs fp16 or fp32 or int8, not bf16"):
        trb.TensorRTBackend(tiny_model[0], precision="bf16")


class Built(Exception):
    """What the fake build_engine raises once it has recorded its call."""


@pytest.fixture
def fake_trt(monkeypatch):
    """TensorRT 10.9, pycuda and a "Fake GPU", as far as finding an engine goes; build_engine
    records its arguments and raises Built. Returns the list of build_engine calls."""
    calls = []

    def build_engine(*args, **kwargs):
        calls.append((args, kwargs))
        raise Built

    monkeypatch.setattr(tb, "import_tensorrt", lambda: SimpleNamespace(__version__="10.9.0"))
    monkeypatch.setattr(tb, "import_pycuda", lambda: SimpleNamespace())
    monkeypatch.setattr(tb, "gpu_name", lambda: "Fake GPU")
    monkeypatch.setattr(tb, "build_engine", build_engine)
    return calls


def _command(message: str) -> list[str]:
    """The `engines build ...` command quoted in an error message, as argv after `engines`."""
    found = re.search(r"`(engines build [^`]*)`", message)
    assert found, message
    return shlex.split(found.group(1))[1:]


@pytest.mark.parametrize("precision,fp16,int8", [("fp16", True, False), ("fp32", False, False),
                                                 ("int8", True, True)])
def test_without_a_cached_engine_it_builds_nothing_and_names_the_command(
        tiny_model, tmp_path, fake_trt, precision, fp16, int8):
    onnx_path = tiny_model[0]
    with pytest.raises(trb.EngineNotBuilt) as e:
        trb.TensorRTBackend(onnx_path, max_batch=8, precision=precision, cache_dir=tmp_path)
    assert fake_trt == []
    message = str(e.value)
    assert "Fake GPU" in message and "TensorRT 10.9.0" in message and str(tmp_path) in message
    a = parser().parse_args(_command(message))
    assert (a.model, a.max_batch, a.fp16, a.int8, a.cache_dir) == (onnx_path, 8, fp16, int8, tmp_path)
    assert isinstance(e.value, BackendUnavailable)


def test_it_builds_only_when_asked(tiny_model, tmp_path, fake_trt):
    onnx_path = tiny_model[0]
    with pytest.raises(Built):
        trb.TensorRTBackend(onnx_path, 8, "fp32", tmp_path, build_if_missing=True)
    assert fake_trt == [((onnx_path, 8), {"fp16": False, "cache_dir": tmp_path})]
    # int8 needs calibration images: never built here
    with pytest.raises(trb.EngineNotBuilt, match="--int8 --calib FACES_DIR"):
        trb.TensorRTBackend(onnx_path, 8, "int8", tmp_path, build_if_missing=True)
    assert len(fake_trt) == 1


def test_the_registry_says_how_to_build_or_builds_when_asked(tiny_model, tmp_path, fake_trt,
                                                             monkeypatch):
    monkeypatch.setenv("TRACKER_ENGINE_CACHE", str(tmp_path))
    with pytest.raises(BackendUnavailable, match="backend 'tensorrt' is not available here") as e:
        load_backend("tensorrt", tiny_model[0])
    assert _command(str(e.value)) == ["build", str(tiny_model[0]), "--max-batch", "32", "--fp16"]
    assert fake_trt == []
    with pytest.raises(Built):
        load_backend("tensorrt", tiny_model[1],  # the .pt: the .onnx beside it
                     options=BackendOptions(precision="fp32", batches=(1, 4), build_if_missing=True))
    assert fake_trt == [((tiny_model[0], 4), {"fp16": False, "cache_dir": None})]


# --- with TensorRT, pycuda and a GPU ---------------------------------------------------------

def _gpu_ready() -> bool:
    if not HAS_TRT:
        return False
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


@pytest.mark.gpu
@pytest.mark.skipif(not _gpu_ready(), reason="needs TensorRT 10, pycuda and a CUDA GPU")
def test_engine_matches_onnxruntime_and_the_codec(tiny_model, tmp_path):
    from tracker.engines.onnxruntime_backend import OnnxBackend

    onnx_path, _, _, info = tiny_model
    with pytest.raises(trb.EngineNotBuilt, match="engines build"):
        trb.TensorRTBackend(onnx_path, max_batch=8, precision="fp32", cache_dir=tmp_path)
    built = tb.build_engine(onnx_path, 8, fp16=False, cache_dir=tmp_path)
    assert tb.build_engine(onnx_path, 8, fp16=False, cache_dir=tmp_path) == built  # cached
    be = trb.TensorRTBackend(onnx_path, max_batch=8, precision="fp32", cache_dir=tmp_path)
    assert be.engine_path == built and be.info == info and be.precision == "fp32"
    x = np.random.default_rng(0).standard_normal((5, 3, *info.model.input_hw)).astype(np.float32)
    ref = OnnxBackend(onnx_path)(x)
    for b in (1, 5):
        np.testing.assert_allclose(be(x[:b]), ref[:b], atol=2e-2)  # TF32 convolutions
    xy, score = be.decode_on_device(x)
    hm = be(x)
    ref_xy, ref_score = info.codec.decode(hm)
    np.testing.assert_allclose(xy, ref_xy, atol=1e-3)
    np.testing.assert_allclose(score, ref_score, atol=1e-6)
