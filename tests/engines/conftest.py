"""Shared fixtures for the engines tests: a tiny model (ONNX + shipped .pt) and heatmaps."""
from pathlib import Path

import pytest
import torch

from tests.engines.heatmaps import FIXTURES, real_heatmaps, real_points  # noqa: F401
from tracker.core.codec import HeatmapCodec
from tracker.core.model import FAN
from tracker.core.model_config import ModelConfig
from tracker.core.modelfile import ModelInfo
from tracker.engines.export import export_onnx, save_shipped

#: Small, fast and non-square (an H/W swap shows at once): 64x48 input, 16x12 heatmaps.
TINY = ModelConfig(stacks=1, width=16, depth=2, input_hw=(64, 48), heatmap_hw=(16, 12), stem_width=8)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> tuple[Path, Path, torch.nn.Module, ModelInfo]:
    """(model.onnx, model.pt, net, info) of an untrained tiny FAN, exported with metadata."""
    torch.manual_seed(0)
    net = FAN(TINY).eval()
    with torch.no_grad():  # non-trivial BN statistics, so that folding them is exercised
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    info = ModelInfo("tiny", TINY, HeatmapCodec(TINY.input_hw, TINY.heatmap_hw))
    d = tmp_path_factory.mktemp("tiny")
    export_onnx(net, info, d / "tiny.onnx")
    save_shipped(net, info, d / "tiny.pt", half=False)
    return d / "tiny.onnx", d / "tiny.pt", net, info
