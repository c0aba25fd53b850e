from pathlib import Path

import numpy as np
import pytest

from tracker.core.datasets import image_folder, read_image
from train.cache import Cache, cut, video_faces

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(scope="session")
def fixture_cache() -> Cache:
    """A crop cache of the real human-labelled stills and a few frames of the fixture clip."""
    imgs, pts, src, grp = [], [], [], []
    for r in image_folder(FIXTURES / "stills"):
        c, p = cut(read_image(r.image), r.points)
        imgs.append(c), pts.append(p), src.append(0), grp.append(f"stills/{r.group}")
    for c, p in video_faces(FIXTURES / "feat_single", every=12):
        imgs.append(c), pts.append(p), src.append(1), grp.append("videos/feat_single")
    return Cache(np.stack(imgs), np.stack(pts), np.asarray(src), np.asarray(grp),
                 ["300w_lfpw", "videos"])
