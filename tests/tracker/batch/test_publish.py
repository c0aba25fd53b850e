"""Result folders appear whole, with their marker, or not at all."""
from __future__ import annotations

import json

import pytest

from tracker.batch.publish import (
    DONE,
    ResultFolderError,
    leftovers,
    publish,
    publish_failure,
    read_marker,
    remove_leftovers,
    temp_folder,
)


def test_a_result_is_hidden_until_published_with_its_marker(tmp_path):
    final = tmp_path / "a" / "clip"
    tmp = temp_folder(final)
    assert tmp.parent == final.parent and tmp.name.startswith(".clip.tmp-")
    (tmp / "landmarks.jsonl").write_text("{}\n")
    assert not final.exists() and read_marker(final) is None and leftovers(final) == [tmp]
    publish(tmp, final, {"config_hash": "c"})
    assert not tmp.exists() and (final / "landmarks.jsonl").read_text() == "{}\n"
    assert read_marker(final) == ("done", {"config_hash": "c"})
    assert leftovers(final) == []


def test_a_new_result_replaces_the_old_one_whole(tmp_path):
    final = tmp_path / "clip"
    publish_failure(final, {"error": "boom"})
    assert read_marker(final) == ("failed", {"error": "boom"}) and sorted(p.name for p in final.iterdir()) == ["FAILED.json"]
    tmp = temp_folder(final)
    (tmp / "x").write_text("new")
    publish(tmp, final, {"n": 2})
    assert sorted(p.name for p in final.iterdir()) == [DONE, "x"]
    assert json.loads((final / DONE).read_text()) == {"n": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["clip"]


def test_a_folder_the_batch_did_not_write_is_never_replaced(tmp_path):
    final = tmp_path / "clip"
    final.mkdir()
    (final / "precious.txt").write_text("mine")
    with pytest.raises(ResultFolderError, match="not a batch result"):
        publish(temp_folder(final), final, {})
    assert (final / "precious.txt").read_text() == "mine"


def test_leftovers_of_crashed_attempts_are_removed(tmp_path):
    final = tmp_path / "clip"
    for _ in range(2):
        (temp_folder(final) / "partial.jsonl").write_text("{")
    other = temp_folder(tmp_path / "clip2")
    assert len(leftovers(final)) == 2
    assert remove_leftovers(final) == 2 and leftovers(final) == [] and other.is_dir()
