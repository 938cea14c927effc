import cv2
import numpy as np
import pytest

from avatar.errors import NoFaceError, ShapeError
from avatar.face.landmarks import LandmarkDetector, detect_face, select_face


def test_landmarks_on_real_portrait(portrait):
    face = detect_face(portrait, "astronaut")
    lm = face.landmarks
    assert lm.shape == (478, 3)
    x0, y0, x1, y1 = face.box
    # the astronaut's face sits in the upper middle of the 512×512 photo
    assert 150 < x0 < x1 < 300 and 50 < y0 < y1 < 220
    # eyes above the nose tip, nose above the chin, irises inside the eye corners
    assert lm[33, 1] < lm[1, 1] < lm[152, 1]
    assert min(lm[33, 0], lm[133, 0]) < lm[468, 0] < max(lm[33, 0], lm[133, 0])


def test_no_face_names_the_file():
    blank = np.full((256, 256, 3), 127, np.uint8)
    with pytest.raises(NoFaceError, match="wall.png"):
        detect_face(blank, "wall.png")


def test_several_faces_largest_by_default_and_index(portrait):
    small = cv2.resize(portrait, None, fx=0.8, fy=0.8, interpolation=cv2.INTER_AREA)
    canvas = np.full((512, 1024, 3), 200, np.uint8)
    canvas[:, :512] = portrait
    canvas[512 - small.shape[0]:, 1024 - small.shape[1]:] = small
    with LandmarkDetector() as det:
        faces = det.detect(canvas)
    assert len(faces) == 2
    assert faces[0].area > faces[1].area and faces[0].box[0] < 512
    assert select_face(faces, 1, "x").box[0] > 512
    with pytest.raises(NoFaceError, match="--face-index"):
        select_face(faces, None, "group.jpg", require_single=True)
    with pytest.raises(NoFaceError, match="only 2"):
        select_face(faces, 5, "group.jpg")


def test_wrong_dtype_is_refused():
    with LandmarkDetector() as det, pytest.raises(ShapeError, match="uint8"):
        det.detect(np.zeros((64, 64, 3), np.float32))


def test_finding_faces_does_not_import_matplotlib():
    """mediapipe's drawing helpers (and matplotlib with them) load only when something draws."""
    import subprocess
    import sys

    code = ("import sys, numpy as np\n"
            "from avatar.face.landmarks import LandmarkDetector\n"
            "with LandmarkDetector() as d: d.detect(np.zeros((64, 64, 3), np.uint8))\n"
            "print('matplotlib' in sys.modules)\n"
            "import mediapipe as mp\n"
            "assert mp.solutions.drawing_utils.DrawingSpec is not None\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip().splitlines()[-1] == "False"


def test_landmarks_read_from_the_serialised_list_match_the_fields():
    """The tracker reads x, y, z from mediapipe's serialised landmark list when it has the plain
    layout; a list with any other field set (visibility) is read field by field, the same."""
    from mediapipe.framework.formats import landmark_pb2

    from avatar.face.landmarks import _xyz

    rng = np.random.default_rng(0)
    values = rng.uniform(-1, 1, (478, 3)).astype(np.float32)
    values[5] = 0.0  # zeros are still written
    lms = landmark_pb2.NormalizedLandmarkList()
    for x, y, z in values:
        p = lms.landmark.add()
        p.x, p.y, p.z = float(x), float(y), float(z)
    np.testing.assert_array_equal(_xyz(lms), values)
    lms.landmark[7].visibility = 0.5  # another layout: the field-by-field reading
    np.testing.assert_array_equal(_xyz(lms), values)


class _Counting:
    """A mediapipe graph that counts the frames it processes."""

    def __init__(self, graph):
        self.graph, self.calls = graph, 0

    def process(self, image):
        self.calls += 1
        return self.graph.process(image)

    def close(self):
        self.graph.close()


def _two_faces(portrait):
    """Two copies of the portrait's face on a 512 px square, the top-left one larger (mediapipe's
    video graph sees the whole frame at once: the faces must be large in it)."""
    face = portrait[20:276, 100:356]
    canvas = np.full((512, 512, 3), 200, np.uint8)
    canvas[:256, :256] = face
    canvas[312:, 312:] = cv2.resize(face, (200, 200), interpolation=cv2.INTER_AREA)
    return canvas


def test_video_with_one_face_is_tracked_without_the_detector_looking_for_more(portrait):
    """The graph with room for several faces runs its face detector on every frame; while the
    video shows one face, the one-face graph tracks it, with the same landmarks."""
    from avatar.face.landmarks import RECOUNT_FRAMES

    frames = [np.ascontiguousarray(np.roll(portrait, k, axis=1)) for k in range(0, 2 * RECOUNT_FRAMES + 4, 1)]
    with LandmarkDetector(video=True) as det, LandmarkDetector(video=True, max_faces=1) as single:
        made, graph = [], det._graph

        def counted(max_faces, video=None):
            made.append((max_faces, video, _Counting(graph(max_faces, video))))
            return made[-1][2]

        det._graph = counted
        got = [det.detect(f)[0].landmarks for f in frames]
        want = [single.detect(f)[0].landmarks for f in frames]
    many = sum(g.calls for faces, video, g in made if faces > 1 and video is not False)
    assert many == 0 and any(faces == 1 and g.calls for faces, _, g in made)
    assert max(float(np.abs(a - b).max()) for a, b in zip(got, want)) < 1e-3


def test_a_second_face_joining_a_video_is_found_within_the_recount(portrait):
    from avatar.face.landmarks import RECOUNT_FRAMES

    canvas = _two_faces(portrait)
    alone = canvas.copy()
    alone[256:, 256:] = 200
    with LandmarkDetector(video=True) as det:
        assert [len(det.detect(alone)) for _ in range(3)] == [1, 1, 1]
        counts = [len(det.detect(canvas)) for _ in range(RECOUNT_FRAMES + 2)]
        faces = det.detect(canvas)
    assert counts[-1] == 2 and len(faces) == 2
    assert faces[0].area > faces[1].area and faces[0].box[0] < 256


def test_a_face_that_jumps_is_found_on_the_frame_it_lands(portrait):
    """A cut moves the face away from where the one-face graph tracked it; alone, that graph
    looks for it again only on the next frame."""
    face = portrait[20:276, 100:356]
    cut = np.full_like(portrait, 200)
    cut[256:, 256:] = face
    with LandmarkDetector(video=True) as det:
        counts = [len(det.detect(f)) for f in (portrait, portrait, cut, cut)]
        assert det._single is not None  # the one-face graph was the one tracking
    assert counts == [1, 1, 1, 1]
