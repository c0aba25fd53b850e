"""TorchCudaBackend: a clear error without CUDA (CI); on a GPU, the same landmarks as the CPU
backend in fp32 and fp16, with and without CUDA graphs, and decoding on the device."""
import numpy as np
import pytest
import torch

from tracker.core.modelfile import ModelFileError
from tracker.engines.backend import BackendUnavailable
from tracker.engines.torch_backend import TorchBackend
from tracker.engines.torch_cuda import TorchCudaBackend

CUDA = torch.cuda.is_available()


@pytest.mark.skipif(CUDA, reason="a CUDA device is present")
def test_construction_without_cuda_says_why(tiny_model):
    with pytest.raises(BackendUnavailable, match="no CUDA device.*CUDA build of torch"):
        TorchCudaBackend(tiny_model[1])


def test_missing_model_is_a_model_file_error(tmp_path):
    with pytest.raises(ModelFileError, match="missing.pt"):
        TorchCudaBackend(tmp_path / "missing.pt")
    with pytest.raises(ModelFileError, match="missing.pt"):
        TorchCudaBackend(tmp_path / "missing.onnx")  # looks for the .pt beside it


def _faces(info, n: int, seed: int = 0) -> np.ndarray:
    """(n, 3, H, W) network input from the fixture stills' faces (cropped as in training)."""
    from tests.engines.heatmaps import FIXTURES
    from tracker.core.datasets import read_image
    from tracker.core.geometry import landmarks_crop_transform, warp
    from tracker.core.pts import read_pts

    crops = []
    files = sorted((FIXTURES / "stills").glob("*.png"))
    for i in range(n):
        p = files[i % len(files)]
        m = landmarks_crop_transform(read_pts(p.with_suffix(".pts")), info.model.input_hw, info.crop_ratio)
        crops.append(warp(read_image(p), m, info.model.input_hw))
    return info.normalise(np.stack(crops))


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
@pytest.mark.parametrize("fp16", [False, True])
@pytest.mark.parametrize("graphs", [(1, 4), ()])
def test_matches_the_cpu_backend(tiny_model, fp16, graphs):
    _, pt, _, info = tiny_model
    gpu = TorchCudaBackend(pt, fp16=fp16, cuda_graph_batches=graphs)
    cpu = TorchBackend(pt)
    x = _faces(info, 7)
    for b in (1, 3, 4, 7):  # exact graph sizes, padding and chunking
        ref = cpu(x[:b])
        out = gpu(x[:b])
        assert out.shape == ref.shape and out.dtype == np.float32
        scale = np.abs(ref).max()
        np.testing.assert_allclose(out, ref, atol=(2e-2 if fp16 else 5e-3) * scale)
    # the same landmarks, where the CPU heatmaps have a clear peak
    ref_xy, ref_peak = info.codec.decode(cpu(x))
    xy, _ = info.codec.decode(gpu(x))
    err = np.linalg.norm(xy - ref_xy, axis=-1)
    assert np.median(err) < (0.25 if fp16 else 0.05), np.median(err)


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
def test_decode_on_device_equals_the_codec(tiny_model):
    if not (_has("pycuda") or _has("cupy")):
        pytest.skip("needs pycuda or CuPy to load the kernel")
    _, pt, _, info = tiny_model
    gpu = TorchCudaBackend(pt, fp16=False, cuda_graph_batches=(8,))
    x = _faces(info, 5)
    hm = gpu.heatmaps_device(x)
    assert hm.is_cuda and hm.shape == (5, info.model.n_points, *info.model.heatmap_hw)
    ref_xy, ref_score = info.codec.decode(hm.float().cpu().numpy())
    xy, score = gpu.decode_on_device(x)
    np.testing.assert_allclose(xy, ref_xy, atol=1e-3)
    np.testing.assert_allclose(score, ref_score, atol=1e-6)
    to_frame = np.tile(np.array([[2.0, 0.0, 100.0], [0.0, 2.0, 50.0]]), (5, 1, 1))
    fxy, _ = gpu.decode_on_device(x, to_frame)
    np.testing.assert_allclose(fxy, 2 * ref_xy + [100.0, 50.0], atol=2e-3)


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
