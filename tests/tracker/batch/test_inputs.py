"""Which videos a batch finds (folders, globs, list files) and where their results go."""
from __future__ import annotations

from pathlib import Path

import pytest

from tracker.batch.inputs import InputError, common_root, find_videos, result_folders


@pytest.fixture
def tree(tmp_path):
    for rel in ("x/a.mp4", "x/y/b.MOV", "x/y/notes.txt.bak", "x/.hidden/c.mp4", "z/c.mp4", "z/c.avi",
                "z/readme.md"):
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")
    return tmp_path


def test_a_folder_is_searched_recursively_for_videos_only(tree):
    assert find_videos([tree / "x"]) == [tree / "x/a.mp4", tree / "x/y/b.MOV"]


def test_globs_are_expanded_here_recursively(tree):
    assert find_videos([str(tree / "**" / "c.*")]) == [tree / "z/c.avi", tree / "z/c.mp4"]
    assert find_videos([str(tree / "*")]) == sorted(
        [tree / "x/a.mp4", tree / "x/y/b.MOV", tree / "z/c.avi", tree / "z/c.mp4"])


def test_a_list_file_names_paths_relative_to_itself(tree):
    lst = tree / "x" / "videos.txt"
    lst.write_text("# my videos\na.mp4\n\n../z/*.avi\n" + str(tree / "z") + "\n")
    assert find_videos([lst]) == [tree / "x/a.mp4", tree / "z/c.avi", tree / "z/c.mp4"]
    at = tree / "list-without-extension"
    at.write_text("x/a.mp4\n")
    assert find_videos([f"@{at}"]) == [tree / "x/a.mp4"]


def test_duplicates_collapse_and_the_order_is_sorted(tree):
    found = find_videos([tree / "z/c.mp4", tree / "z", str(tree / "z" / "c.mp4")])
    assert found == [tree / "z/c.avi", tree / "z/c.mp4"]


@pytest.mark.parametrize("spec, message", [
    ("missing.mp4", "no such file"), ("x/y/*.mkv", "matches no video"), ("z/sub", "no such file"),
])
def test_inputs_that_name_nothing_are_errors(tree, spec, message):
    (tree / "empty").mkdir()
    with pytest.raises(InputError, match=message):
        find_videos([tree / spec])
    with pytest.raises(InputError, match="no video files"):
        find_videos([tree / "empty"])
    with pytest.raises(InputError, match="no input"):
        find_videos([])


def test_results_mirror_the_tree_from_the_common_root(tree):
    videos = find_videos([tree])
    assert common_root(videos) == tree
    folders = {v.relative_to(tree).as_posix(): p.as_posix() for v, p in result_folders(videos).items()}
    assert folders == {"x/a.mp4": "x/a", "x/y/b.MOV": "x/y/b", "z/c.avi": "z/c_avi", "z/c.mp4": "z/c_mp4"}
    one = [tree / "x/y/b.MOV"]
    assert common_root(one) == tree / "x/y" and result_folders(one) == {one[0]: Path("b")}
