"""Reading and writing .pts files (tracker/core/pts.py) on the real fixtures and on broken files."""
from pathlib import Path

import numpy as np
import pytest

from tracker.core.pts import PtsError, format_pts, parse_pts, read_pts, write_pts

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
REAL = sorted((FIXTURES / "stills").glob("*.pts")) + sorted((FIXTURES / "300vw_sample").glob("*/annot/*.pts"))


def _raw_numbers(path):
    """The 1-based coordinates as written in the file, read without the module under test."""
    text = path.read_bytes().decode("ascii")
    body = text[text.index("{") + 1 : text.index("}")]
    return np.array([[float(v) for v in ln.split()] for ln in body.splitlines() if ln.strip()])


def test_fixtures_are_there():
    assert len(REAL) == 11  # 7 stills and 4 frames of 300VW


@pytest.mark.parametrize("path", REAL, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_real_files_are_read_as_0_based_points(path):
    xy = read_pts(path)
    raw = _raw_numbers(path)
    assert xy.shape == (68, 2) and xy.dtype == np.float64
    np.testing.assert_array_equal(xy, raw - 1.0)


def test_known_values():
    # lfpw_image_0001.pts: 6 decimals, no final newline; first point "115.167660 220.807529"
    xy = read_pts(FIXTURES / "stills" / "lfpw_image_0001.pts")
    np.testing.assert_allclose(xy[0], [114.167660, 219.807529], atol=1e-12)
    np.testing.assert_allclose(xy[-1], [182.164758, 333.765621], atol=1e-12)
    # 300VW's files have CRLF line ends; first point "743.224 197.764"
    xy = read_pts(FIXTURES / "300vw_sample" / "001" / "annot" / "000006.pts")
    np.testing.assert_allclose(xy[0], [742.224, 196.764], atol=1e-12)


def test_write_read_round_trip(tmp_path):
    xy = np.random.default_rng(0).uniform(-0.5, 639.5, (68, 2))
    write_pts(tmp_path / "a.pts", xy)
    np.testing.assert_allclose(read_pts(tmp_path / "a.pts"), xy, atol=5e-4 + 1e-9)
    text = (tmp_path / "a.pts").read_text()
    assert text.startswith("version: 1\nn_points:  68\n{\n") and text.endswith("\n}\n")
    # the file is 1-based: pixel centre 0 is written as 1
    write_pts(tmp_path / "b.pts", np.zeros((68, 2)))
    assert "\n1.000 1.000\n" in (tmp_path / "b.pts").read_text()


def test_real_file_round_trip(tmp_path):
    src = FIXTURES / "300vw_sample" / "401" / "annot" / "000731.pts"
    write_pts(tmp_path / "c.pts", read_pts(src))  # 6 decimals in, 3 out
    np.testing.assert_allclose(_raw_numbers(tmp_path / "c.pts"), _raw_numbers(src), atol=5e-4 + 1e-9)


def test_other_point_counts():
    xy = np.arange(10.0).reshape(5, 2)
    np.testing.assert_array_equal(parse_pts(format_pts(xy), n_points=5), xy)
    np.testing.assert_array_equal(parse_pts(format_pts(xy), n_points=None), xy)
    with pytest.raises(ValueError, match=r"\(K, 2\)"):
        format_pts(np.zeros((5, 3)))


def test_header_is_optional_but_checked_when_there():
    assert parse_pts("{\n1 2\n3 4\n}", n_points=2).tolist() == [[0, 1], [2, 3]]
    with pytest.raises(PtsError, match="bad n_points"):
        parse_pts("n_points: many\n{\n1 2\n}")
    with pytest.raises(PtsError, match="expected a header"):
        parse_pts("hello\n{\n1 2\n}")


def _body(n):
    return "\n".join(f"{i + 1}.5 {i + 2}.25" for i in range(n))


BROKEN = {
    "truncated": (f"version: 1\nn_points: 68\n{{\n{_body(40)}", "no closing '}'"),
    "header_count": (f"version: 1\nn_points: 68\n{{\n{_body(67)}\n}}\n", "header says 68 points, file has 67"),
    "not_68": (f"version: 1\nn_points: 5\n{{\n{_body(5)}\n}}\n", "expected 68 points, got 5"),
    "non_numeric": (f"version: 1\nn_points: 68\n{{\n{_body(10)}\n1.0 abc\n{_body(57)}\n}}\n", "non-numeric point"),
    "nan": (f"version: 1\nn_points: 68\n{{\nnan 1.0\n{_body(67)}\n}}\n", "non-finite"),
    "three_values": (f"version: 1\nn_points: 68\n{{\n1 2 3\n{_body(67)}\n}}\n", "expected 'x y'"),
    "empty": ("", "empty or truncated"),
    "header_only": ("version: 1\nn_points: 68\n", "empty or truncated"),
}


@pytest.mark.parametrize("name", BROKEN)
def test_malformed_files_raise_pts_error_naming_the_file(tmp_path, name):
    text, problem = BROKEN[name]
    path = tmp_path / f"{name}.pts"
    path.write_text(text)
    with pytest.raises(PtsError) as e:
        read_pts(path)
    assert str(path) in str(e.value) and problem in str(e.value)


def test_binary_file(tmp_path):
    path = tmp_path / "image.pts"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe\x80\x81")
    with pytest.raises(PtsError, match="image.pts"):
        read_pts(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(PtsError, match=r"nope\.pts: cannot read"):
        read_pts(tmp_path / "nope.pts")
    with pytest.raises(PtsError, match="cannot read"):
        read_pts(tmp_path)  # a folder


def test_pts_error_is_a_value_error():
    assert issubclass(PtsError, ValueError)
