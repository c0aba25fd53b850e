"""TensorRT engine building (engines/tensorrt_build.py): the engine cache key and file name,
the cache folder, finding a cached engine, the `engines build` command for one, and the
calibration batches (plain Python, CI); clear errors without TensorRT."""
import importlib.util
import os
import shlex

import numpy as np
import pytest

from tracker.core.modelfile import ModelFileError
from tracker.engines import tensorrt_build as tb
from tracker.engines.backend import BackendUnavailable
from tracker.engines.cli import parser

SHA = "ab" * 32
BASE = dict(model_sha256=SHA, gpu_name="NVIDIA H100 80GB HBM3", trt_version="10.3.0",
            precision="fp16", max_batch=32)
HAS_TRT = all(importlib.util.find_spec(m) is not None for m in ("tensorrt", "pycuda"))


def test_engine_key_is_stable_and_short():
    k = tb.engine_key(**BASE)
    assert k == tb.engine_key(**BASE)
    assert len(k) == 20 and all(c in "0123456789abcdef" for c in k)


@pytest.mark.parametrize("field,value", [("model_sha256", "cd" * 32), ("gpu_name", "NVIDIA A100"),
                                         ("trt_version", "10.4.0"), ("precision", "fp32"),
                                         ("max_batch", 8)])
def test_engine_key_changes_with_every_field(field, value):
    assert tb.engine_key(**{**BASE, field: value}) != tb.engine_key(**BASE)


def test_int8_key_includes_the_calibration_data():
    a = tb.engine_key(**{**BASE, "precision": "int8"}, calibration_sha256="1" * 64)
    b = tb.engine_key(**{**BASE, "precision": "int8"}, calibration_sha256="2" * 64)
    assert a != b
    with pytest.raises(ValueError, match="calibration_sha256"):
        tb.engine_key(**{**BASE, "precision": "int8"})
    with pytest.raises(ValueError, match="calibration_sha256"):
        tb.engine_key(**BASE, calibration_sha256="1" * 64)


@pytest.mark.parametrize("field,value,match", [("model_sha256", "xyz", "64 hex"),
                                               ("precision", "bf16", "precision"),
                                               ("max_batch", 0, "max_batch")])
def test_engine_key_rejects_bad_fields(field, value, match):
    with pytest.raises(ValueError, match=match):
        tb.engine_key(**{**BASE, field: value})


def test_engine_filename_and_precision():
    assert tb.engine_filename("rt-m", "fp16", 32, "0123") == "rt-m.fp16.b32.0123.engine"
    assert tb.engine_filename("my model/v2", "fp32", 1, "ab") == "my_model_v2.fp32.b1.ab.engine"
    assert [tb.precision_of(f, i) for f, i in [(True, False), (False, False), (True, True)]] == \
        ["fp16", "fp32", "int8"]


def test_file_sha256_of_the_model(tiny_model):
    import hashlib

    onnx_path = tiny_model[0]
    assert tb.file_sha256(onnx_path) == hashlib.sha256(onnx_path.read_bytes()).hexdigest()


def test_default_cache_dir_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TRACKER_ENGINE_CACHE", str(tmp_path / "e"))
    assert tb.default_cache_dir() == tmp_path / "e"
    monkeypatch.delenv("TRACKER_ENGINE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert tb.default_cache_dir() == tmp_path / "subpixel-tracker" / "engines"


def test_calibration_batches(tiny_model):
    info = tiny_model[3]
    h, w = info.model.input_hw
    crops = np.random.default_rng(0).integers(0, 256, (19, h, w, 3), dtype=np.uint8)
    batches = tb.calibration_batches(crops, info, batch=8)
    assert batches.shape == (2, 8, 3, h, w) and batches.dtype == np.float32
    np.testing.assert_array_equal(batches[1, 0], info.normalise(crops[8:9])[0])
    with pytest.raises(ValueError, match="at least 8"):
        tb.calibration_batches(crops[:5], info)
    with pytest.raises(ValueError, match="uint8 RGB"):
        tb.calibration_batches(crops.transpose(0, 3, 1, 2), info)


@pytest.mark.skipif(HAS_TRT, reason="TensorRT and pycuda are installed here")
def test_building_without_tensorrt_says_what_to_install(tiny_model):
    with pytest.raises(BackendUnavailable, match="TensorRT"):
        tb.build_engine(tiny_model[0], 4)


def test_model_file_errors_come_first(tmp_path):
    with pytest.raises(ModelFileError, match="no such model file"):
        tb.build_engine(tmp_path / "missing.onnx", 4)


def _fake_engine(cache_dir, onnx_path, precision, max_batch, gpu="Fake GPU", trt="10.9.0",
                 calibration=None, manifest=True):
    """An engine file (and its manifest) where build_engine would cache it."""
    args = (tb.file_sha256(onnx_path), gpu, trt, precision, max_batch, calibration)
    path = cache_dir / tb.engine_filename(onnx_path.stem, precision, max_batch, tb.engine_key(*args))
    path.write_bytes(b"serialised engine")
    if manifest:
        tb.write_manifest(path, tb.engine_fields(*args))
    return path


def test_cached_engine_is_found_by_its_key(tiny_model, tmp_path):
    onnx_path = tiny_model[0]
    assert tb.cached_engine(onnx_path, "fp16", 8, "Fake GPU", "10.9.0", tmp_path) is None
    path = _fake_engine(tmp_path, onnx_path, "fp16", 8, manifest=False)
    assert tb.cached_engine(onnx_path, "fp16", 8, "Fake GPU", "10.9.0", tmp_path) == path
    for other in [("fp32", 8, "Fake GPU", "10.9.0"), ("fp16", 4, "Fake GPU", "10.9.0"),
                  ("fp16", 8, "Other GPU", "10.9.0"), ("fp16", 8, "Fake GPU", "10.10.0")]:
        assert tb.cached_engine(onnx_path, *other, tmp_path) is None, other


def test_cached_int8_engine_is_found_by_its_manifest(tiny_model, tmp_path):
    onnx_path = tiny_model[0]
    _fake_engine(tmp_path, onnx_path, "int8", 8, calibration="1" * 64, manifest=False)
    _fake_engine(tmp_path, onnx_path, "int8", 8, gpu="Other GPU", calibration="2" * 64)
    assert tb.cached_engine(onnx_path, "int8", 8, "Fake GPU", "10.9.0", tmp_path) is None
    old = _fake_engine(tmp_path, onnx_path, "int8", 8, calibration="3" * 64)
    os.utime(old, (1e9, 1e9))
    assert tb.cached_engine(onnx_path, "int8", 8, "Fake GPU", "10.9.0", tmp_path) == old
    new = _fake_engine(tmp_path, onnx_path, "int8", 8, calibration="4" * 64)
    assert tb.cached_engine(onnx_path, "int8", 8, "Fake GPU", "10.9.0", tmp_path) == new
    assert tb.cached_engine(onnx_path, "int8", 4, "Fake GPU", "10.9.0", tmp_path) is None


@pytest.mark.parametrize("precision,fp16,int8", [("fp16", True, False), ("fp32", False, False),
                                                 ("int8", True, True)])
def test_build_command_builds_what_cached_engine_looks_for(tmp_path, monkeypatch, precision,
                                                           fp16, int8):
    monkeypatch.setenv("TRACKER_ENGINE_CACHE", str(tmp_path / "default"))
    for cache_dir, expected in [(None, None), (tmp_path / "default", None),
                                (tmp_path / "my cache", tmp_path / "my cache")]:
        command = tb.build_command(tmp_path / "my model.onnx", precision, 16, cache_dir)
        argv = shlex.split(command)
        assert argv[:2] == ["engines", "build"]
        a = parser().parse_args(argv[1:])
        assert (a.model, a.max_batch, a.fp16, a.int8) == (tmp_path / "my model.onnx", 16, fp16, int8)
        assert a.cache_dir == expected
    with pytest.raises(ValueError, match="precision"):
        tb.build_command("m.onnx", "bf16", 8)
