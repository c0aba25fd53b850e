"""Image arrays as the project uses them: (H, W, 3) uint8 RGB, C-contiguous.

PyAV's `to_ndarray` returns row-padded arrays for some widths (360, 590, 700, 844, ...) that
some native code misreads without an error, and grey, RGBA and 16-bit images are common in
folders, so images from files and decoders go through `to_rgb` once, where they enter. Image
files are read as viewers show them (`read_rgb`): phones store photos sideways with an EXIF
orientation tag that every viewer honours, and so do the labelling tools.
"""
from __future__ import annotations

import numpy as np

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def to_rgb(image: np.ndarray, bgr: bool = False) -> np.ndarray:
    """(H, W), (H, W, 1), (H, W, 3) or (H, W, 4) uint8 or uint16 (RGB, or BGR when `bgr`) ->
    C-contiguous (H, W, 3) uint8 RGB. ValueError for anything else (float, wrong shape, empty)."""
    import cv2

    img = np.asarray(image)
    if img.size == 0:
        raise ValueError(f"empty image of shape {img.shape}")
    if img.dtype != np.uint8:
        if img.dtype == np.uint16:
            img = (img >> 8).astype(np.uint8)
        else:
            raise ValueError(f"unsupported image dtype {img.dtype}")
    if img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 1):
        return np.ascontiguousarray(cv2.cvtColor(img.reshape(img.shape[:2]), cv2.COLOR_GRAY2RGB))
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ValueError(f"unsupported image shape {img.shape}")
    if img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB if bgr else cv2.COLOR_RGBA2RGB)
    elif bgr:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(img)


def read_rgb(path) -> np.ndarray:
    """An image file as viewers show it -> (H, W, 3) uint8 RGB (`to_rgb`): its EXIF orientation
    applied, any bit depth, alpha dropped. ValueError when it cannot be read or is empty."""
    import cv2

    # IMREAD_UNCHANGED would ignore the EXIF orientation; these flags keep grey and 16 bit
    # (which to_rgb handles) and apply it.
    img = cv2.imread(str(path), cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH)
    if img is None or img.size == 0:
        raise ValueError("unreadable or empty image")
    return to_rgb(img, bgr=True)
