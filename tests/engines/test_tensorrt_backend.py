"""TensorRT backend (engines/tensorrt_backend.py): lazy imports and clear errors without
TensorRT (CI); on a machine with TensorRT + pycuda + a GPU, engine parity. (Building and the
engine cache: test_tensorrt_build.py.)"""
import importlib.util
import subprocess
import sys

import numpy as np
import pytest
from tracker.engines import tensorrt_backend as trb
from tracker.engines import tensorrt_build as tb
from tracker.engines.backend import BackendUnavailable

from tracker.core.modelfile import ModelFileError

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
    again = tb.build_engine(onnx_path, 8, fp16=False, cache_dir=tmp_path)
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
