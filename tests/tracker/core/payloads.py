"""Model files that carry a pickled payload, as a malicious download would: a loader must
refuse them without running it. Shared by test_modelfile.py and tests/tracker/test_cli_models.py."""
from __future__ import annotations

import os
import shlex
from pathlib import Path


class Payload:
    """Unpickled, it runs `os.system("touch <marker>")`: the marker file shows that it ran."""

    def __init__(self, marker: Path):
        self.marker = Path(marker)

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def payload_checkpoint(path: Path, marker: Path, shipped: Path | None = None,
                       where: str = "beside") -> Path:
    """A `.pt` at `path` that is a shipped model (the tensors and metadata of `shipped`, a
    shipped .pt, else empty weights) plus a Payload for `marker`: "beside" the weights, "in"
    the state dict, or as the "whole" file."""
    import torch

    ck = {"model_info": "{}", "state_dict": {}}
    if shipped is not None:
        ck = torch.load(shipped, map_location="cpu", weights_only=True)
    if where == "beside":
        ck = {**ck, "note": Payload(marker)}
    elif where == "in":
        ck = {**ck, "state_dict": {**ck["state_dict"], "stem.0.0.weight": Payload(marker)}}
    elif where == "whole":
        ck = Payload(marker)
    else:
        raise ValueError(f"where must be 'beside', 'in' or 'whole', got {where!r}")
    torch.save(ck, path)
    return path
