"""Other 68-point landmarkers to compare the tracker with: mediapipe's Face Mesh (mapped from 468
to 68 points) and dlib (HOG detector + the 68-point ERT shape predictor, the teacher that made
the video labels).

Both answer `.landmarks(image_rgb) -> list of (68, 2) float64` in 0-based pixel centres
(`tracker.core.geometry`), largest face first. Their packages are optional (the `peers` extra:
dlib-bin, face-recognition-models; mediapipe is a core dependency) and imported lazily; a
missing one raises `PeerUnavailable` naming the package to install.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tracker.core.geometry import points_box


class PeerUnavailable(RuntimeError):
    """The optional package a peer needs is not installed."""


#: mediapipe Face Mesh (468 points) -> iBUG 68, one or two mesh indices per iBUG point (a pair is
#: averaged). From PeizhiYan/Mediapipe_2_Dlib_Landmarks, `mediapipe2dlib/mp2dlib.py` (commit
#: db9e81e, Sep. 2024), the mapping most public code copies. A later revision of that file moves
#: the outer brow ends to 156/383 and the nostril wings to 98/327; the first revision is kept
#: because its brow ends (70/300) lie on the brow, where iBUG puts them. Measured by
#: scripts/eval_helen.py (HELEN test, 330 faces, inter-ocular NME): 5.10 % on 68 points, 3.70 %
#: on the 49 inner points (the later revision: 5.25 % / 3.91 %). The jaw rows (1-17) sit on
#: the mesh's silhouette rather than iBUG's jaw line (7-13 % NME per point), so compare
#: mediapipe on the 49 inner points. Row i is iBUG point i + 1 (1-based in the comments).
MEDIAPIPE_TO_IBUG68: tuple[tuple[int, ...], ...] = (
    # jaw 1-17
    (127,), (234,), (93,), (132, 58), (58, 172), (136,), (150,), (176,), (152,),
    (400,), (379,), (365,), (397, 288), (361,), (323,), (454,), (356,),
    # right brow 18-22, left brow 23-27 (subject's right is on the image's left)
    (70,), (63,), (105,), (66,), (107,),
    (336,), (296,), (334,), (293,), (300,),
    # nose bridge 28-31, nostrils 32-36
    (168, 6), (197, 195), (5,), (4,),
    (75,), (97,), (2,), (326,), (305,),
    # right eye 37-42, left eye 43-48
    (33,), (160,), (158,), (133,), (153,), (144,),
    (362,), (385,), (387,), (263,), (373,), (380,),
    # outer lips 49-60
    (61,), (39,), (37,), (0,), (267,), (269,), (291,),
    (321,), (314,), (17,), (84,), (91,),
    # inner lips 61-68
    (78,), (82,), (13,), (312,), (308,), (317,), (14,), (87,),
)


def _mapping_matrix(mapping: tuple[tuple[int, ...], ...], n_src: int = 468) -> np.ndarray:
    """(68, n_src) averaging matrix: row i averages the source points mapped to target i."""
    w = np.zeros((len(mapping), n_src))
    for i, idx in enumerate(mapping):
        w[i, list(idx)] = 1.0 / len(idx)
    return w


_MP_WEIGHTS = _mapping_matrix(MEDIAPIPE_TO_IBUG68)


def mesh_to_ibug68(mesh_xy: np.ndarray) -> np.ndarray:
    """(..., 468 or 478, 2) Face Mesh points -> (..., 68, 2) iBUG points (iris points unused)."""
    mesh_xy = np.asarray(mesh_xy, np.float64)
    if mesh_xy.shape[-2] not in (468, 478) or mesh_xy.shape[-1] != 2:
        raise ValueError(f"mesh_to_ibug68: expected (..., 468, 2), got {mesh_xy.shape}")
    return _MP_WEIGHTS @ mesh_xy[..., :468, :]


def _check_frame(image_rgb: np.ndarray) -> np.ndarray:
    image_rgb = np.asarray(image_rgb)
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image_rgb.shape} {image_rgb.dtype}")
    return np.ascontiguousarray(image_rgb)  # native code misreads row-padded frames


def _largest_first(faces: list[np.ndarray]) -> list[np.ndarray]:
    def area(xy: np.ndarray) -> float:
        x0, y0, x1, y1 = points_box(xy)
        return (x1 - x0) * (y1 - y0)

    return sorted(faces, key=area, reverse=True)


class MediapipeMesh68:
    """mediapipe Face Mesh (legacy `solutions.face_mesh`, refine_landmarks=False) mapped to 68
    iBUG points with `MEDIAPIPE_TO_IBUG68`.

    `static_image_mode=True` runs mediapipe's face detector on every image (for stills);
    False lets it track between video frames. Mesh coordinates are normalised to the image
    ([0, 1] spanning the image's edges), so a pixel centre is x * W - 0.5.
    """

    def __init__(self, static_image_mode: bool = True, max_num_faces: int = 4,
                 min_detection_confidence: float = 0.5, min_tracking_confidence: float = 0.5):
        try:
            from mediapipe.python.solutions import face_mesh
        except ImportError as e:
            raise PeerUnavailable(f"mediapipe is not installed ({e}); pip install mediapipe==0.10.21") from None
        self._make = lambda: face_mesh.FaceMesh(
            static_image_mode=static_image_mode, max_num_faces=max_num_faces,
            refine_landmarks=False, min_detection_confidence=min_detection_confidence,
            min_tracking_confidence=min_tracking_confidence)
        self._mesh = self._make()
        self.static_image_mode = static_image_mode

    def reset(self) -> None:
        """Forget the faces tracked so far (a new video)."""
        self._mesh.close()
        self._mesh = self._make()

    def landmarks(self, image_rgb: np.ndarray) -> list[np.ndarray]:
        """(H, W, 3) uint8 RGB -> list of (68, 2) float64 0-based points, largest face first."""
        img = _check_frame(image_rgb)
        h, w = img.shape[:2]
        res = self._mesh.process(img)
        faces = []
        for lm in res.multi_face_landmarks or []:
            xy = np.array([(p.x, p.y) for p in lm.landmark], np.float64)  # (468, 2) normalised
            xy = xy * np.array([w, h]) - 0.5
            faces.append(mesh_to_ibug68(xy))
        return _largest_first(faces)

    def close(self) -> None:
        self._mesh.close()

    def __enter__(self) -> "MediapipeMesh68":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Dlib68:
    """dlib's HOG face detector + `shape_predictor_68_face_landmarks.dat` (from
    face-recognition-models), run as the video labels were made: upsample 1 when the image's
    shorter side is under 400 px, else 0; every box with a detection score >= `min_score`.
    dlib returns whole-pixel 0-based points."""

    def __init__(self, min_score: float = 0.0, predictor_path: str | None = None):
        try:
            import dlib
        except ImportError as e:
            raise PeerUnavailable(f"dlib is not installed ({e}); pip install dlib-bin==20.0.1.post1 "
                                  "(the 'peers' extra)") from None
        if predictor_path is None:
            try:
                import warnings

                with warnings.catch_warnings():  # it imports pkg_resources
                    warnings.simplefilter("ignore")
                    import face_recognition_models
            except ImportError as e:
                raise PeerUnavailable(f"face_recognition_models is not installed ({e}); pip install "
                                      "face-recognition-models==0.3.0 'setuptools<81'") from None
            predictor_path = face_recognition_models.pose_predictor_model_location()
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(predictor_path))
        self.min_score = min_score

    def reset(self) -> None:
        """dlib keeps no state between frames."""

    def boxes(self, image_rgb: np.ndarray) -> list[tuple[np.ndarray, float]]:
        """HOG detections: [((4,) box x0, y0, x1, y1 in 0-based pixels, score)], in dlib's order."""
        img = _check_frame(image_rgb)
        upsample = 1 if min(img.shape[:2]) < 400 else 0
        rects, scores, _ = self._detector.run(img, upsample, 0.0)
        return [(np.array([r.left(), r.top(), r.right(), r.bottom()], np.float64), float(s))
                for r, s in zip(rects, scores) if s >= self.min_score]

    def landmarks_in(self, image_rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
        """(68, 2) points of the shape predictor run on a given (4,) box."""
        img = _check_frame(image_rgb)
        x0, y0, x1, y1 = (int(round(float(v))) for v in box)
        shape = self._predictor(img, self._dlib.rectangle(x0, y0, x1, y1))
        return np.array([(p.x, p.y) for p in shape.parts()], np.float64)

    def landmarks(self, image_rgb: np.ndarray) -> list[np.ndarray]:
        """(H, W, 3) uint8 RGB -> list of (68, 2) float64 0-based points, largest face first."""
        img = _check_frame(image_rgb)
        return _largest_first([self.landmarks_in(img, b) for b, _ in self.boxes(img)])


@dataclass(frozen=True)
class PeerFace:
    points: np.ndarray  # (68, 2)


@dataclass(frozen=True)
class PeerResult:
    index: int
    timestamp: float
    faces: list = field(default_factory=list)


class PeerTracker:
    """A peer behind the tracker's frame interface (`reset()`, `process(frame, index,
    timestamp) -> result with .faces[i].points`), so `tracker.evaluation.videos.evaluate_300vw` runs it
    on videos exactly as it runs the tracker."""

    def __init__(self, peer):
        self.peer = peer

    def reset(self) -> None:
        self.peer.reset()

    def process(self, frame_rgb: np.ndarray, index: int = 0, timestamp: float = 0.0) -> PeerResult:
        return PeerResult(index, timestamp, [PeerFace(p) for p in self.peer.landmarks(frame_rgb)])


__all__ = ["Dlib68", "MEDIAPIPE_TO_IBUG68", "MediapipeMesh68", "PeerFace", "PeerResult",
           "PeerTracker", "PeerUnavailable", "mesh_to_ibug68"]
