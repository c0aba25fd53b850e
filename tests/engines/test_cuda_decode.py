"""The kernel's Python side (engines/cuda_decode.py): clear errors without a GPU (CI), and on a
GPU the kernel equals its numpy mirror and the codec, on random and real-looking heatmaps,
borders and ties included, through every loader present. (Compilation and a CPU emulation of
the kernel source: test_local_soft_argmax_cu.py.)"""
import numpy as np
import pytest

from tests.engines.heatmaps import real_heatmaps
from tracker.core.codec import HeatmapCodec, decode_np
from tracker.core.geometry import similarity
from tracker.engines import cuda_decode
from tracker.engines.cuda_decode import heatmap_to_frame
from tracker.engines.kernel_reference import local_soft_argmax_ref


def test_block_size_matches_the_kernel():
    assert f"#define LSA_BLOCK {cuda_decode.BLOCK}" in cuda_decode.kernel_source()


def test_missing_loaders_give_a_clear_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_gpu_packages(name, *a, **k):
        if name.split(".")[0] in ("pycuda", "cupy", "cupyx"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_gpu_packages)
    with pytest.raises(cuda_decode.CudaUnavailableError, match="pycuda.*cupy|Install pycuda"):
        cuda_decode.CudaDecoder()
    with pytest.raises(ValueError, match="unknown kernel loader"):
        cuda_decode.CudaDecoder("numba")


def test_heatmap_to_frame_checks_its_shape():
    with pytest.raises(ValueError, match=r"\(B, 2, 3\)"):
        heatmap_to_frame(HeatmapCodec(), np.eye(2, 3))


# --- on a GPU ------------------------------------------------------------------------------

def _gpu_loaders() -> list[str]:
    try:
        import torch
    except ImportError:
        return []
    if not torch.cuda.is_available():
        return []
    found = []
    try:
        import pycuda.driver  # noqa: F401

        found.append("pycuda")
    except ImportError:
        pass
    try:
        import cupy  # noqa: F401

        found.append("cupy")
    except ImportError:
        pass
    return found


LOADERS = _gpu_loaders()
gpu = pytest.mark.skipif(not LOADERS, reason="needs a CUDA GPU, torch CUDA and pycuda or CuPy")


@pytest.fixture(scope="module", params=LOADERS or ["none"])
def decoder(request):
    if request.param == "none":
        pytest.skip("needs a CUDA GPU, torch CUDA and pycuda or CuPy")
    return cuda_decode.CudaDecoder(request.param)


def _check(decoder, hm: np.ndarray, window=5, tau=10.0, transforms=None, atol=1e-4):
    import torch

    t = torch.from_numpy(hm).cuda()
    xy, peak = decoder.decode(t, window=window, tau=tau, transforms=transforms)
    ref_xy, ref_peak = local_soft_argmax_ref(hm, window, tau, transforms)
    np.testing.assert_array_equal(peak, ref_peak)
    np.testing.assert_allclose(xy, ref_xy, rtol=0, atol=atol)
    return xy


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("shape", [(32, 68, 32, 32), (8, 68, 64, 64), (3, 5, 16, 12), (1, 1, 1, 1)])
def test_kernel_equals_reference_on_random_heatmaps(decoder, shape):
    hm = (np.random.default_rng(0).standard_normal(shape) * 0.3).astype(np.float32)
    _check(decoder, hm)


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("hw", [(32, 32), (64, 64), (16, 12)])
def test_kernel_equals_reference_on_real_heatmaps_with_borders(decoder, hw):
    codec = HeatmapCodec((hw[0] * 4, hw[1] * 4), hw)
    hm = real_heatmaps(codec)
    xy = _check(decoder, hm)
    np.testing.assert_allclose(xy, decode_np(hm)[0], rtol=0, atol=1e-4)  # and the codec


@pytest.mark.gpu
@gpu
def test_kernel_ties_and_windows(decoder):
    hm = np.zeros((2, 4, 8, 8), np.float32)
    hm[0, 1, 2, 5] = hm[0, 1, 6, 1] = 1.0
    hm[0, 2, 7, 7] = hm[0, 2, 7, 6] = 2.0
    hm[1] = np.round(np.random.default_rng(1).random((4, 8, 8)) * 3) / 3  # many ties
    for window, tau in [(1, 10.0), (3, 1.0), (5, 10.0), (9, 30.0)]:
        _check(decoder, hm, window, tau)


@pytest.mark.gpu
@gpu
def test_kernel_float16_and_frame_transforms(decoder):
    import torch

    codec = HeatmapCodec((128, 128), (32, 32))
    hm = real_heatmaps(codec, seed=3)
    b = len(hm)
    to_frame = np.stack([similarity(np.array([63.5, 63.5]), np.array([400.0 + 90 * i, 300.0]),
                                    2.0 + 0.1 * i, 5.0 * i) for i in range(b)])
    tr = heatmap_to_frame(codec, to_frame)
    _check(decoder, hm, transforms=tr, atol=1e-3)  # frame pixels: float32 near 1000 px
    h16 = hm.astype(np.float16)
    xy, peak = decoder.decode(torch.from_numpy(h16).cuda(), window=5, tau=10.0)
    ref_xy, ref_peak = local_soft_argmax_ref(h16)
    np.testing.assert_allclose(xy, ref_xy, atol=1e-4)
    np.testing.assert_array_equal(peak, ref_peak)


@pytest.mark.gpu
@gpu
def test_kernel_on_a_raw_device_pointer(decoder):
    import torch

    hm = (np.random.default_rng(2).random((4, 68, 32, 32))).astype(np.float32)
    t = torch.from_numpy(hm).cuda()
    torch.cuda.synchronize()
    xy, peak = decoder.decode(t.data_ptr(), 4, 68, 32, 32, 5, 10.0)
    ref_xy, ref_peak = local_soft_argmax_ref(hm)
    np.testing.assert_allclose(xy, ref_xy, atol=1e-4)
    with pytest.raises(ValueError, match="needs b, k, h and w"):
        decoder.decode(t.data_ptr())
