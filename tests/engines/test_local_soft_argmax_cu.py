"""The CUDA source itself (engines/kernels/local_soft_argmax.cu), on machines without a GPU:
nvcc compiles it for sm_90 with its entry points unmangled, and the source, compiled as C++
under a CPU emulation of the CUDA built-ins it uses (tests/engines/cuda_emulation.cpp: every
CUDA thread a fiber, barriers and warp shuffles honoured), computes what its numpy mirror does
on random, real-looking, border, tie, NaN and float16 maps, with and without transforms."""
import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.engines.heatmaps import real_heatmaps
from tracker.core.codec import HeatmapCodec, decode_np
from tracker.core.geometry import similarity
from tracker.engines.cuda_decode import ENTRY_POINTS, KERNEL_PATH
from tracker.engines.kernel_reference import argmax_ref, local_soft_argmax_ref

NVCC = shutil.which("nvcc")
CXX = shutil.which("g++")
EMULATION = Path(__file__).with_name("cuda_emulation.cpp")


@pytest.mark.skipif(NVCC is None, reason="nvcc is not installed")
@pytest.mark.parametrize("kind", ["ptx", "cubin"])
def test_kernel_compiles_for_sm90_without_warnings(tmp_path, kind):
    out = tmp_path / f"kernel.{kind}"
    r = subprocess.run([NVCC, f"-{kind}", "-arch=sm_90", "-Werror", "all-warnings", "-o", str(out),
                        str(KERNEL_PATH)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert out.stat().st_size > 0
    if kind == "ptx":
        ptx = out.read_text()
        for name in ENTRY_POINTS.values():  # extern "C": unmangled, loadable by name
            assert f".entry {name}(" in ptx


@pytest.fixture(scope="module")
def emulated(tmp_path_factory):
    """kernel(heatmaps, window, tau, transforms) -> (xy, peak), the .cu run on the CPU."""
    if CXX is None:
        pytest.skip("g++ is not installed")
    so = tmp_path_factory.mktemp("emu") / "lsa_emulated.so"
    r = subprocess.run([CXX, "-std=c++17", "-O1", "-ffp-contract=off", "-shared", "-fPIC",
                        f"-I{KERNEL_PATH.parent}", "-o", str(so), str(EMULATION)],
                       capture_output=True, text=True)
    if r.returncode != 0 and "_Float16" in r.stderr:
        pytest.skip("this g++ has no _Float16")
    assert r.returncode == 0, r.stderr
    lib = ctypes.CDLL(str(so))
    p, i = ctypes.c_void_p, ctypes.c_int
    lib.lsa_emulate.argtypes = [i, p, p, p, p, i, i, i, i, i, ctypes.c_float]

    def run(hm: np.ndarray, window: int = 5, tau: float = 10.0, transforms=None):
        hm = np.ascontiguousarray(hm)
        b, k, h, w = hm.shape
        tr = None if transforms is None else np.ascontiguousarray(transforms, np.float32)
        xy = np.full((b, k, 2), -7.0, np.float32)
        peak = np.full((b, k), -7.0, np.float32)
        lib.lsa_emulate(int(hm.dtype == np.float16), hm.ctypes.data, None if tr is None else tr.ctypes.data,
                        xy.ctypes.data, peak.ctypes.data, b * k, k, h, w, window, float(tau))
        return xy, peak

    return run


def assert_same(got, want):
    xy, peak = got
    ref_xy, ref_peak = want
    np.testing.assert_array_equal(peak, ref_peak)  # NaN == NaN here
    # the same double arithmetic rounded once to float32; expf and numpy's exp may differ by
    # an ulp, which can move the rounded result by one float32 ulp
    tol = 1e-6 + np.spacing(np.abs(np.nan_to_num(ref_xy)).astype(np.float32))
    diff = np.abs(np.nan_to_num(xy, nan=1e9) - np.nan_to_num(ref_xy, nan=1e9))
    assert (diff <= tol).all(), diff.max()


@pytest.mark.parametrize("shape", [(1, 12, 32, 32), (1, 3, 64, 64), (2, 3, 16, 12), (1, 2, 12, 16),
                                   (1, 1, 1, 1), (1, 2, 1, 7)])
def test_random_maps(emulated, shape):
    hm = (np.random.default_rng(0).standard_normal(shape) * 0.3).astype(np.float32)
    assert_same(emulated(hm), local_soft_argmax_ref(hm))
    # and the codec (in heatmap pixels)
    np.testing.assert_allclose(emulated(hm)[0], decode_np(hm)[0], rtol=0, atol=1e-5)


def test_real_looking_maps_with_peaks_on_the_borders(emulated):
    hm = real_heatmaps(HeatmapCodec((64, 48), (16, 12)))  # (7, 68, 16, 12)
    ix, iy, _ = argmax_ref(hm)
    border = (ix == 0) | (iy == 0) | (ix == 11) | (iy == 15)
    picks = np.concatenate([np.flatnonzero(border)[:24], np.flatnonzero(~border)[:8]])
    maps = hm.reshape(-1, 16, 12)[picks][None]  # (1, 32, 16, 12)
    assert border.sum() >= 24
    assert_same(emulated(maps), local_soft_argmax_ref(maps))


def test_ties_nan_and_infinities(emulated):
    hm = np.zeros((2, 4, 8, 8), np.float32)  # [0, 0]: all equal -> (0, 0)
    hm[0, 1, 2, 5] = hm[0, 1, 6, 1] = 1.0  # two maxima: the first in row-major order
    hm[0, 2, 7, 7] = hm[0, 2, 7, 6] = 2.0
    hm[0, 3] = -np.inf
    hm[0, 3, 4, 4] = -1.0
    hm[1, 0] = np.round(np.random.default_rng(1).random((8, 8)) * 3) / 3  # many ties
    hm[1, 1] = -np.inf  # all -inf: numpy's argmax says pixel 0; the point is NaN
    hm[1, 2] = np.random.default_rng(2).random((8, 8))
    hm[1, 2, 5, 2] = hm[1, 2, 6, 6] = np.nan  # the first NaN wins
    hm[1, 3, 0, 0] = np.inf
    for window, tau in [(1, 10.0), (3, 1.0), (5, 10.0), (9, 30.0)]:
        got, want = emulated(hm, window, tau), local_soft_argmax_ref(hm, window, tau)
        assert_same(got, want)
    xy, peak = emulated(hm)
    assert xy[0, 1].tolist() == pytest.approx([5.0, 2.0], abs=1e-3) and np.isnan(peak[1, 2])


def test_float16_maps(emulated):
    hm = real_heatmaps(HeatmapCodec((128, 128), (32, 32)), seed=3)[:1, :10].astype(np.float16)
    assert_same(emulated(hm), local_soft_argmax_ref(hm))


def test_frame_transforms(emulated):
    hm = real_heatmaps(HeatmapCodec((64, 48), (16, 12)), seed=4)[:3, :6]
    tr = np.stack([similarity(np.array([5.5, 7.5]), np.array([300.0 + 200 * i, 360.0]), 8.0 + i,
                              15.0 * i) for i in range(3)]).astype(np.float32)
    assert_same(emulated(hm, transforms=tr), local_soft_argmax_ref(hm, transforms=tr))


def test_the_largest_window(emulated):
    hm = (np.random.default_rng(5).random((1, 2, 40, 40)) * 0.1).astype(np.float32)
    assert_same(emulated(hm, 31, 5.0), local_soft_argmax_ref(hm, 31, 5.0))
