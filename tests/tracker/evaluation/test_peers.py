"""Peers: the 468-to-68 mapping's shape and sanity, and both peers on the human-labelled stills
(skipped when mediapipe or dlib is not installed)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from tracker.core.datasets import image_folder, read_image
from tracker.core.metrics import nme
from tracker.evaluation import peers
from tracker.evaluation.scoring import pick_face

STILLS = Path(__file__).resolve().parents[2] / "fixtures" / "stills"


def test_mapping_is_68_rows_of_mesh_indices():
    m = peers.MEDIAPIPE_TO_IBUG68
    assert len(m) == 68
    assert all(1 <= len(r) <= 2 and all(0 <= i < 468 for i in r) for r in m)
    w = peers._mapping_matrix(m)
    np.testing.assert_allclose(w.sum(1), 1.0)


def test_mesh_to_ibug68_averages_pairs():
    mesh = np.arange(468 * 2, dtype=np.float64).reshape(468, 2)
    out = peers.mesh_to_ibug68(mesh)
    assert out.shape == (68, 2)
    np.testing.assert_allclose(out[0], mesh[127])
    np.testing.assert_allclose(out[3], (mesh[132] + mesh[58]) / 2)  # iBUG 4
    assert peers.mesh_to_ibug68(np.zeros((3, 478, 2))).shape == (3, 68, 2)
    with pytest.raises(ValueError, match="468"):
        peers.mesh_to_ibug68(np.zeros((68, 2)))


def test_missing_package_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "dlib", None)  # import dlib -> ImportError
    with pytest.raises(peers.PeerUnavailable, match="pip install dlib-bin"):
        peers.Dlib68()


def _human_stills():
    return list(image_folder(STILLS))  # lfpw_, 300w_: human-labelled iBUG 300-W faces


def _errors(peer) -> list[float]:
    out = []
    for r in _human_stills():
        faces = peer.landmarks(read_image(r.image))
        assert all(f.shape == (68, 2) for f in faces)
        i = pick_face(faces, r.points)
        assert i is not None, f"{r.image.name}: face not found"
        out.append(float(nme(faces[i][None], r.points[None])[0]))
    return out


def _peer(cls, **kw):
    try:
        return cls(**kw)
    except peers.PeerUnavailable as e:
        pytest.skip(str(e))


def test_mediapipe_mapping_gives_a_sane_nme_on_human_stills():
    mp = _peer(peers.MediapipeMesh68, static_image_mode=True)
    e = _errors(mp)
    assert len(e) == 7
    assert np.mean(e) < 0.060 and max(e) < 0.075  # measured 5.2 % and 6.3 %


def test_mediapipe_row_padded_frame():
    mp = _peer(peers.MediapipeMesh68, static_image_mode=True)
    img = read_image(STILLS / "lfpw_image_0001.png")
    padded = np.zeros((img.shape[0], img.shape[1] + 7, 3), np.uint8)
    padded[:, :img.shape[1]] = img
    view = padded[:, :img.shape[1]]  # not C-contiguous
    assert not view.flags["C_CONTIGUOUS"]
    a, b = mp.landmarks(img), mp.landmarks(view)
    assert len(a) == len(b) == 1
    np.testing.assert_allclose(a[0], b[0], atol=1e-3)


def test_dlib_gives_a_sane_nme_on_human_stills():
    d = _peer(peers.Dlib68)
    e = _errors(d)
    assert len(e) == 7
    assert np.mean(e) < 0.031 and max(e) < 0.060  # measured 2.6 % and 5.3 %
    faces = d.landmarks(read_image(STILLS / "lfpw_image_0001.png"))
    np.testing.assert_array_equal(faces[0], np.round(faces[0]))  # whole pixels


def test_dlib_row_padded_frame_and_largest_first():
    d = _peer(peers.Dlib68)
    img = read_image(STILLS / "300w_indoor_029.png")
    wide = np.zeros((img.shape[0], img.shape[1] * 2, 3), np.uint8)
    wide[:, :img.shape[1]] = img
    small = img[::2, ::2]
    wide[:small.shape[0], img.shape[1]:img.shape[1] + small.shape[1]] = small
    faces = d.landmarks(wide)  # the face and a half-size copy beside it
    assert len(faces) >= 2
    sizes = [np.ptp(f[:, 0]) for f in faces]
    assert sizes == sorted(sizes, reverse=True)
    a = d.landmarks(img)
    b = d.landmarks(wide[:, :img.shape[1]])  # row-padded view of the same pixels
    assert len(a) == len(b) and np.allclose(a[0], b[0])


def test_dlib_through_the_video_evaluator_reproduces_its_own_labels():
    """feat_single's labels were made by this very teacher (HOG box + 68-point model, PyAV
    frames): run through PeerTracker and evaluate_300vw, it must agree to the pixel, which
    checks frame numbering, contiguity and the coordinate convention end to end."""
    from tracker.evaluation.videos import evaluate_300vw

    d = _peer(peers.Dlib68)
    feat = STILLS.parent / "feat_single"
    res = evaluate_300vw(feat, tracker=peers.PeerTracker(d), max_frames=12, progress=False)
    assert res["counts"]["frames_scored"] == 12 and res["counts"]["missed"] == 0
    assert res["categories"]["all"]["68"]["median"] == 0.0


def test_mediapipe_as_a_video_tracker():
    from tracker.evaluation.videos import evaluate_300vw

    mp = _peer(peers.MediapipeMesh68, static_image_mode=False)
    feat = STILLS.parent / "feat_single"
    res = evaluate_300vw(feat, tracker=peers.PeerTracker(mp), max_frames=12, progress=False)
    assert res["counts"]["frames_scored"] == 12 and res["counts"]["missed"] == 0
    assert res["categories"]["all"]["49"]["mean"] < 0.040  # measured 3.3 %
