"""`tracker` and model files that hold more than weights: refused before anything in them runs,
with exit code 2 and the reason on stderr, whether asked for the model's info or to track with
it (the payload: tests/tracker/core/payloads.py)."""
from __future__ import annotations

import re

import pytest

from tests.tracker.core.payloads import payload_checkpoint
from tests.tracker.runtime_fixtures import FIXTURES, tiny_model
from tracker.cli import main

REFUSED = re.compile(r"evil\.pt: refused: it holds Python objects other than tensors and plain "
                     r"data \((posix|os|nt)\.system\); only weights are loaded")
STILL = FIXTURES / "stills" / "300w_indoor_020.png"


@pytest.fixture
def evil(tmp_path):
    """(a shipped .pt of the tiny model with a payload beside its weights, the payload's marker)."""
    marker = tmp_path / "payload-ran"
    path = payload_checkpoint(tmp_path / "evil.pt", marker, tiny_model().with_suffix(".pt"))
    return path, marker


def test_info_refuses_it(evil, capsys):
    path, marker = evil
    assert main(["info", "--model", str(path)]) == 2
    err = capsys.readouterr().err
    assert REFUSED.search(err) and "Traceback" not in err
    assert not marker.exists()


def test_track_refuses_it(evil, tmp_path, capsys):
    path, marker = evil
    code = main(["track", str(STILL), "--backend", "torch", "--model", str(path), "--quiet",
                 "--csv", str(tmp_path / "log.csv")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert REFUSED.search(err) and "Traceback" not in err
    assert not marker.exists()
