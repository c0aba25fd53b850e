"""TensorRT backend: the engine cache key and file name (plain Python, CI), lazy imports and
clear errors without TensorRT; on a machine with TensorRT + pycuda + a GPU, engine parity."""
import importlib.util
import subprocess
import sys

import numpy as np
import pytest
from tracker.engines import tensorrt_backend as trb
from tracker.engines.backend import BackendUnavailable

from tracker.core.modelfile import ModelFileError

SHA = "ab" * 32
BASE = dict(model_sha256=SHA, gpu_name="NVIDIA H100 80GB HBM3", trt_version="10.3.0",
            precision="fp16", max_batch=32)
HAS_TRT = all(importlib.util.find_spec(m) is not None for m in ("tensorrt", "pycuda"))


def test_engine_key_is_stable_and_short():
    k = trb.engine_key(**BASE)
    assert k == trb.engine_key(**BASE)
    assert len(k) == 20 and all(c in "0123456789abcdef" for c in k)


@pytest.mark.parametrize("field,value", [("model_sha256", "cd" * 32), ("gpu_name", "NVIDIA A100"),
                                         ("trt_version", "10.4.0"), ("precision", "fp32"),
                                         ("max_batch", 8)])
def test_engine_key_changes_with_every_field(field, value):
    assert trb.engine_key(**{**BASE, field: value}) != trb.engine_key(**BASE)


def test_int8_key_includes_the_calibration_data():
    a = trb.engine_key(**{**BASE, "precision": "int8"}, calibration_sha256="1" * 64)
    b = trb.engine_key(**{**BASE, "precision": "int8"}, calibration_sha256="2" * 64)
    assert a != b
    with pytest.raises(ValueError, match="calibration_sha256"):
        trb.engine_key(**{**BASE, "precision": "int8"})
    with pytest.raises(ValueError, match="calibration_sha256"):
        trb.engine_key(**BASE, calibration_sha256="1" * 64)


@pytest.mark.parametrize("field,value,match", [("model_sha256", "xyz", "64 hex"),
                                               ("precision", "bf16", "precision"),
                                               ("max_batch", 0, "max_batch")])
def test_engine_key_rejects_bad_fields(field, value, match):
    with pytest.raises(ValueError, match=match):
        trb.engine_key(**{**BASE, field: value})


def test_engine_filename_and_precision():
    assert trb.engine_filename("rt-m", "fp16", 32, "0123") == "rt-m.fp16.b32.0123.engine"
    assert trb.engine_filename("my model/v2", "fp32", 1, "ab") == "my_model_v2.fp32.b1.ab.engine"
    assert [trb.precision_of(f, i) for f, i in [(True, False), (False, False), (True, True)]] == \
        ["fp16", "fp32", "int8"]


def test_file_sha256_of_the_model(tiny_model):
    import hashlib

    onnx_path = tiny_model[0]
    assert trb.file_sha256(onnx_path) == hashlib.sha256(onnx_path.read_bytes()).hexdigest()


def test_default_cache_dir_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TRACKER_ENGINE_CACHE", str(tmp_path / "e"))
    assert trb.default_cache_dir() == tmp_path / "e"
    monkeypatch.delenv("TRACKER_ENGINE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert trb.default_cache_dir() == tmp_path / "subpixel-tracker" / "engines"


def test_calibration_batches(tiny_model):
    info = tiny_model[3]
    h, w = info.model.input_hw
    crops = np.random.default_rng(0).integers(0, 256, (19, h, w, 3), dtype=np.uint8)
    batches = trb.calibration_batches(crops, info, batch=8)
    assert batches.shape == (2, 8, 3, h, w) and batches.dtype == np.float32
    np.testing.assert_array_equal(batches[1, 0], info.normalise(crops[8:9])[0])
    with pytest.raises(ValueError, match="at least 8"):
        trb.calibration_batches(crops[:5], info)
    with pytest.raises(ValueError, match="uint8 RGB"):
        trb.calibration_batches(crops.transpose(0, 3, 1, 2), info)


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
    with pytest.raises(BackendUnavailable, match="TensorRT"):
        trb.build_engine(tiny_model[0], 4)


def test_model_file_errors_come_first(tmp_path, tiny_model):
    with pytest.raises(ModelFileError, match="no such model file"):
        trb.TensorRTBackend(tmp_path / "missing.onnx")
    with pytest.raises(ValueError, match=r"\.onnx"):
        trb.TensorRTBackend(tiny_model[1])  # the .pt
    with pytest.raises(ModelFileError, match="no such model file"):
        trb.build_engine(tmp_path / "missing.onnx", 4)


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
    be = trb.TensorRTBackend(onnx_path, max_batch=8, fp16=False, cache_dir=tmp_path)
    assert be.info == info
    again = trb.build_engine(onnx_path, 8, fp16=False, cache_dir=tmp_path)
    assert again == be.engine_path  # cached
    x = np.random.default_rng(0).standard_normal((5, 3, *info.model.input_hw)).astype(np.float32)
    ref = OnnxBackend(onnx_path)(x)
    for b in (1, 5):
        np.testing.assert_allclose(be(x[:b]), ref[:b], atol=2e-2)  # TF32 convolutions
    xy, score = be.decode_on_device(x)
    hm = be(x)
    ref_xy, ref_score = info.codec.decode(hm)
    np.testing.assert_allclose(xy, ref_xy, atol=1e-3)
    np.testing.assert_allclose(score, ref_score, atol=1e-6)
