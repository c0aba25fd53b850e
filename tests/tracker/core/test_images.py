import numpy as np
import pytest

from tracker.core.images import to_rgb


def test_to_rgb_converts_grey_rgba_uint16_and_strided():
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = to_rgb(grey)
    assert out.shape == (3, 4, 3) and (out[..., 0] == grey).all() and out.flags["C_CONTIGUOUS"]
    assert to_rgb(grey[..., None]).shape == (3, 4, 3)
    rgba = np.zeros((3, 4, 4), np.uint8)
    rgba[..., 0] = 200
    assert (to_rgb(rgba)[..., 0] == 200).all()
    assert (to_rgb(rgba, bgr=True)[..., 2] == 200).all()
    assert to_rgb(np.full((2, 2, 3), 65535, np.uint16)).max() == 255
    wide = np.zeros((4, 10, 3), np.uint8)
    view = wide[:, 1:8]  # not contiguous
    assert not view.flags["C_CONTIGUOUS"] and to_rgb(view).flags["C_CONTIGUOUS"]
    with pytest.raises(ValueError):
        to_rgb(np.zeros((3, 4, 3), np.float32))
    with pytest.raises(ValueError):
        to_rgb(np.zeros((3, 4, 5), np.uint8))
    with pytest.raises(ValueError):
        to_rgb(np.zeros((0, 4, 3), np.uint8))


def test_to_rgb_says_what_it_cannot_convert():
    with pytest.raises(ValueError, match="dtype"):
        to_rgb(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        to_rgb(np.zeros((4, 4, 2), np.uint8))
    assert to_rgb(np.zeros((4, 4, 1), np.uint8)).shape == (4, 4, 3)
