"""The 68-point iBUG/300-W landmark scheme (and the 98-point WFLW and 29-point COFW schemes).

Indices here are 0-based; the 1-based numbers of the papers appear only in comments.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LandmarkScheme:
    """A landmark markup: its size, named groups, flip permutation and normalising points."""

    name: str
    n_points: int
    groups: dict[str, tuple[int, ...]]
    flip: tuple[int, ...]  # flip[i] is the index that point i becomes under a horizontal mirror
    outer_eye_corners: tuple[int, int]  # used for inter-ocular NME

    def __post_init__(self) -> None:
        if sorted(self.flip) != list(range(self.n_points)):
            raise ValueError(f"{self.name}: flip is not a permutation of {self.n_points} points")
        if any(self.flip[self.flip[i]] != i for i in range(self.n_points)):
            raise ValueError(f"{self.name}: flip is not an involution")


def _mirror_pairs(n: int, pairs: list[tuple[int, int]]) -> tuple[int, ...]:
    perm = list(range(n))
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return tuple(perm)


def _ibug68() -> LandmarkScheme:
    pairs = [(i, 16 - i) for i in range(8)]  # jaw 1-17
    pairs += [(17 + i, 26 - i) for i in range(5)]  # brows 18-27
    pairs += [(31, 35), (32, 34)]  # nostrils 32-36
    pairs += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]  # eyes 37-48
    pairs += [(48, 54), (49, 53), (50, 52), (59, 55), (58, 56)]  # outer lips 49-60
    pairs += [(60, 64), (61, 63), (67, 65)]  # inner lips 61-68
    groups = {
        "jaw": tuple(range(0, 17)),
        "right_brow": tuple(range(17, 22)),
        "left_brow": tuple(range(22, 27)),
        "nose": tuple(range(27, 36)),
        "right_eye": tuple(range(36, 42)),
        "left_eye": tuple(range(42, 48)),
        "outer_mouth": tuple(range(48, 60)),
        "inner_mouth": tuple(range(60, 68)),
    }
    return LandmarkScheme("ibug68", 68, groups, _mirror_pairs(68, pairs), (36, 45))


def _wflw98() -> LandmarkScheme:
    pairs = [(i, 32 - i) for i in range(16)]  # contour 0-32
    pairs += [(33 + i, 46 - i) for i in range(5)] + [(38 + i, 50 - i) for i in range(4)]  # brows
    pairs += [(55, 59), (56, 58)]  # nose bottom 55-59
    pairs += [(60, 72), (61, 71), (62, 70), (63, 69), (64, 68), (65, 75), (66, 74), (67, 73)]
    pairs += [(76, 82), (77, 81), (78, 80), (87, 83), (86, 84)]  # outer mouth 76-87
    pairs += [(88, 92), (89, 91), (95, 93), (96, 97)]  # inner mouth 88-95, pupils 96-97
    groups = {
        "contour": tuple(range(0, 33)),
        "brows": tuple(range(33, 51)),
        "nose": tuple(range(51, 60)),
        "eyes": tuple(range(60, 76)),
        "mouth": tuple(range(76, 96)),
        "pupils": (96, 97),
    }
    return LandmarkScheme("wflw98", 98, groups, _mirror_pairs(98, pairs), (60, 72))


def _cofw29() -> LandmarkScheme:
    # COFW order as in RCPR/HRNet; interocular from the eye centres 8 and 9 as HRNet does.
    pairs = [(0, 1), (2, 3), (4, 6), (5, 7), (8, 9), (10, 11), (12, 14), (13, 15), (16, 17),
             (18, 19), (22, 23)]
    groups = {"brows": tuple(range(0, 8)), "eyes": tuple(range(8, 18)),
              "nose": tuple(range(18, 22)), "mouth": tuple(range(22, 28)), "chin": (28,)}
    return LandmarkScheme("cofw29", 29, groups, _mirror_pairs(29, pairs), (8, 9))


IBUG68 = _ibug68()
WFLW98 = _wflw98()
COFW29 = _cofw29()
SCHEMES = {s.name: s for s in (IBUG68, WFLW98, COFW29)}

#: 300VW's 49-point protocol: the 68 without the jaw (1-17) and the inner mouth corners (61, 65).
INNER49 = tuple(i for i in range(17, 68) if i not in (60, 64))


def flip_points(xy: np.ndarray, width: float, scheme: LandmarkScheme = IBUG68) -> np.ndarray:
    """Mirror (..., K, 2) points horizontally in an image of `width` pixels and relabel them.

    Pixel centres sit on integers, so the image spans [-0.5, width - 0.5] and x -> width - 1 - x.
    """
    out = np.asarray(xy, dtype=np.float64)[..., list(scheme.flip), :].copy()
    out[..., 0] = width - 1 - out[..., 0]
    return out
