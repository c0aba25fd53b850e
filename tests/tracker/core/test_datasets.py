"""Dataset readers (tracker/core/datasets.py) on the real fixtures and generated files."""
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from tracker.core.datasets import (
    DatasetError,
    FaceRecord,
    image_folder,
    read_image,
    video_clip,
    videos_300vw,
    wflw_list,
)
from tracker.core.pts import PtsError, read_pts

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
STILLS = FIXTURES / "stills"
MULTI = FIXTURES / "photos_multi"  # one photo, four faces: <stem>_<k>.pts
CLIP = FIXTURES / "feat_single"  # 72 frames, 72 labels
VW = FIXTURES / "300vw_sample"  # imgs/ layout


# --- images -------------------------------------------------------------------------------------

def test_read_image_returns_rgb():
    path = STILLS / "lfpw_image_0001.png"
    img = read_image(path)
    bgr = cv2.imread(str(path))
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert img.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(img, bgr[..., ::-1])


def test_read_image_colour_order(tmp_path):
    bgr = np.zeros((4, 6, 3), np.uint8)
    bgr[..., 2] = 255  # red in OpenCV's BGR order
    cv2.imwrite(str(tmp_path / "red.png"), bgr)
    assert read_image(tmp_path / "red.png")[0, 0].tolist() == [255, 0, 0]


def test_read_image_grey(tmp_path):
    grey = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    cv2.imwrite(str(tmp_path / "grey.png"), grey)
    img = read_image(tmp_path / "grey.png")
    assert img.shape == (6, 8, 3)
    for c in range(3):
        np.testing.assert_array_equal(img[..., c], grey)


def test_read_image_rgba_drops_alpha(tmp_path):
    bgra = np.zeros((5, 7, 4), np.uint8)
    bgra[..., 0] = 200  # blue
    bgra[..., 3] = 17  # nearly transparent: alpha is dropped, not blended
    cv2.imwrite(str(tmp_path / "rgba.png"), bgra)
    img = read_image(tmp_path / "rgba.png")
    assert img.shape == (5, 7, 3) and img[0, 0].tolist() == [0, 0, 200]


def test_read_image_16_bit(tmp_path):
    img16 = np.full((3, 4, 3), 0xABCD, np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), img16)
    img = read_image(tmp_path / "deep.png")
    assert img.dtype == np.uint8 and (img == 0xAB).all()


def test_read_image_errors(tmp_path):
    with pytest.raises(DatasetError, match=r"missing\.jpg: no such image file"):
        read_image(tmp_path / "missing.jpg")
    (tmp_path / "broken.jpg").write_bytes(b"this is not a JPEG")
    with pytest.raises(DatasetError, match=r"broken\.jpg: unreadable"):
        read_image(tmp_path / "broken.jpg")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(DatasetError, match=r"empty\.png: unreadable"):
        read_image(tmp_path / "empty.png")


# --- image folders ------------------------------------------------------------------------------

def test_image_folder_one_face_per_image():
    recs = list(image_folder(STILLS))
    assert len(recs) == 7
    for r in recs:
        assert isinstance(r, FaceRecord) and r.frame is None
        assert r.image.parent == STILLS and r.image.suffix == ".png" and r.image.is_file()
        np.testing.assert_array_equal(r.points, read_pts(STILLS / f"{r.image.stem}.pts"))
        assert r.group and r.image.stem.startswith(r.group)


def test_image_folder_several_faces_per_image():
    recs = list(image_folder(MULTI))
    assert len(recs) == 4
    assert {r.image.name for r in recs} == {"deepface_selfie-many-people.jpg"}
    assert {r.group for r in recs} == {"deepface_selfie-many-people"}
    for k, r in enumerate(recs):
        np.testing.assert_array_equal(r.points, read_pts(MULTI / f"deepface_selfie-many-people_{k}.pts"))
    # four different faces with their eyes inside the 600x604 photo (a jaw may cross the border)
    centres = np.array([r.points.mean(0) for r in recs])
    assert np.linalg.norm(centres[:, None] - centres[None], axis=-1)[np.triu_indices(4, 1)].min() > 20
    for r in recs:
        eyes = r.points[36:48]
        assert (eyes > -0.5).all() and (eyes[:, 0] < 599.5).all() and (eyes[:, 1] < 603.5).all()


def test_image_folder_identity_groups(tmp_path):
    """The validation split is by identity: a 300-W source image (its faces `_1`, `_2`), an
    LFW person (`_0001`, `_0002`), and each LFPW `image_NNNN` on its own."""
    src = STILLS / "lfpw_image_0001"
    stems = {"100032540_1": "100032540", "100032540_2": "100032540", "AJ_Cook_0001": "AJ_Cook",
             "AJ_Cook_0002": "AJ_Cook", "image_0006": "image_0006", "image_0007": "image_0007"}
    for stem in stems:
        shutil.copy(src.with_suffix(".png"), tmp_path / f"{stem}.png")
        shutil.copy(src.with_suffix(".pts"), tmp_path / f"{stem}.pts")
    assert {r.image.stem: r.group for r in image_folder(tmp_path)} == stems


def test_image_folder_prefers_the_exact_stem(tmp_path):
    """`a_1.pts` belongs to `a_1.jpg` when that image exists, else to `a.jpg`."""
    src = STILLS / "lfpw_image_0001"
    for name in ("a.png", "a_1.png"):
        shutil.copy(src.with_suffix(".png"), tmp_path / name)
    for name in ("a_0.pts", "a_1.pts"):
        shutil.copy(src.with_suffix(".pts"), tmp_path / name)
    recs = {r.image.name for r in image_folder(tmp_path)}
    assert recs == {"a.png", "a_1.png"}


def test_image_folder_errors(tmp_path):
    with pytest.raises(DatasetError, match="no such folder"):
        list(image_folder(tmp_path / "nope"))
    shutil.copy(STILLS / "lfpw_image_0001.pts", tmp_path / "orphan.pts")
    with pytest.raises(DatasetError, match=r"orphan\.pts: no image beside it"):
        list(image_folder(tmp_path))
    (tmp_path / "orphan.pts").unlink()
    shutil.copy(STILLS / "lfpw_image_0001.png", tmp_path / "x.png")
    (tmp_path / "x.pts").write_text("version: 1\nn_points: 1\n{\n1 1\n}\n")
    with pytest.raises(PtsError, match=r"x\.pts: expected 68 points"):
        list(image_folder(tmp_path))


# --- 300VW layout -------------------------------------------------------------------------------

def test_video_clip_with_a_video():
    video, labels = video_clip(CLIP)
    assert video == CLIP / "vid.mp4"
    assert sorted(labels) == list(range(1, 73))  # 1-based frame numbers, every frame labelled
    np.testing.assert_array_equal(labels[1], read_pts(CLIP / "annot" / "000001.pts"))
    np.testing.assert_array_equal(labels[72], read_pts(CLIP / "annot" / "000072.pts"))
    assert all(v.shape == (68, 2) for v in labels.values())


def test_video_clip_labels_match_the_decoded_frame_count():
    av = pytest.importorskip("av")
    with av.open(str(CLIP / "vid.mp4")) as c:
        n = sum(1 for _ in c.decode(video=0))
    video, labels = video_clip(CLIP)
    assert max(labels) == n == 72  # frame 1 is the first decoded frame, 72 the last


def test_video_clip_with_an_image_folder():
    video, labels = video_clip(VW / "001")
    assert video == VW / "001" / "imgs"
    assert sorted(labels) == [6, 9]
    for f in labels:
        assert (video / f"{f:06d}.jpg").is_file()
    np.testing.assert_array_equal(labels[9], read_pts(VW / "001" / "annot" / "000009.pts"))


def test_videos_300vw_on_the_sample():
    recs = list(videos_300vw(VW))
    assert [(r.group, r.frame) for r in recs] == [("001", 6), ("001", 9), ("401", 731), ("401", 732)]
    assert all(r.image.name == "imgs" for r in recs)


def test_videos_300vw_on_a_folder_of_clips(tmp_path):
    (tmp_path / "feat_single").symlink_to(CLIP, target_is_directory=True)
    (tmp_path / "not_a_clip").mkdir()
    recs = list(videos_300vw(tmp_path))
    assert len(recs) == 72
    assert [r.frame for r in recs] == list(range(1, 73))
    assert {r.group for r in recs} == {"feat_single"}
    assert recs[0].image == tmp_path / "feat_single" / "vid.mp4"


def test_300vw_errors(tmp_path):
    with pytest.raises(DatasetError, match="no annot/ folder"):
        video_clip(tmp_path)
    (tmp_path / "annot").mkdir()
    with pytest.raises(DatasetError, match=r"no vid\.mp4/vid\.avi or imgs/"):
        video_clip(tmp_path)
    (tmp_path / "imgs").mkdir()
    shutil.copy(CLIP / "annot" / "000001.pts", tmp_path / "annot" / "first.pts")
    with pytest.raises(DatasetError, match=r"first\.pts: 300VW annotation names are frame numbers"):
        video_clip(tmp_path)
    with pytest.raises(DatasetError, match="no 300VW clip folders"):
        list(videos_300vw(tmp_path / "annot"))
    with pytest.raises(DatasetError, match="no 300VW clip folders"):
        list(videos_300vw(tmp_path / "nope"))


# --- WFLW list ----------------------------------------------------------------------------------

def _wflw_line(xy, image):
    coords = " ".join(f"{v:.6f}" for v in xy.ravel())
    return f"{coords} 10 20 300 320 0 1 0 0 0 1 {image}"


def test_wflw_list(tmp_path):
    g = np.random.default_rng(0)
    a, b = g.uniform(0, 500, (98, 2)), g.uniform(0, 500, (98, 2))
    lst = tmp_path / "list_98pt_rect_attr_test.txt"
    lst.write_text(_wflw_line(a, "7--Cheering/7_Cheering_Cheering_7_16.jpg") + "\n\n"
                   + _wflw_line(b, "51--Dresses/51_Dresses_wearingdress_51_377.jpg") + "\n")
    recs = list(wflw_list(lst, tmp_path / "images"))
    assert len(recs) == 2
    np.testing.assert_allclose(recs[0].points, a, atol=1e-6)  # already 0-based: unchanged
    np.testing.assert_allclose(recs[1].points, b, atol=1e-6)
    assert recs[0].image == tmp_path / "images" / "7--Cheering" / "7_Cheering_Cheering_7_16.jpg"
    assert recs[1].group == "51_Dresses_wearingdress_51"


def test_wflw_list_errors(tmp_path):
    lst = tmp_path / "list.txt"
    xy = np.zeros((98, 2))
    lst.write_text(_wflw_line(xy, "a.jpg") + "\n" + _wflw_line(xy, "b.jpg").replace(" 10 20 ", " 10 "))
    with pytest.raises(DatasetError, match=r"list\.txt:2: expected 207 fields, got 206"):
        list(wflw_list(lst, tmp_path))
    lst.write_text(_wflw_line(xy, "a.jpg").replace("0.000000", "x", 1))
    with pytest.raises(DatasetError, match=r"list\.txt:1: non-numeric"):
        list(wflw_list(lst, tmp_path))
