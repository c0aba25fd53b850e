"""ONNX export (engines/export.py): onnxruntime equals torch at any batch size (the batch axis
is dynamic), and the ModelInfo metadata survives the round trip."""
import numpy as np
import onnx
import onnxruntime as ort
import torch

from tracker.core.modelfile import INPUT_NAME, OUTPUT_NAME, load_torch, read_onnx_info
from tracker.engines.export import export_onnx, parity, save_shipped
from tracker.engines.onnxruntime_backend import OnnxBackend
from tracker.engines.torch_backend import TorchBackend


def test_dynamic_batch_parity(tiny_model):
    onnx_path, _, net, info = tiny_model
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].shape[0] == "batch" and sess.get_outputs()[0].shape[0] == "batch"
    x = np.random.default_rng(0).standard_normal((5, 3, *info.model.input_hw)).astype(np.float32)
    for b in (1, 5):
        out = sess.run([OUTPUT_NAME], {INPUT_NAME: x[:b]})[0]
        with torch.no_grad():
            ref = net(torch.from_numpy(x[:b])).numpy()
        assert out.shape == (b, info.model.n_points, *info.model.heatmap_hw)
        np.testing.assert_allclose(out, ref, atol=1e-4)
    assert parity(net, onnx_path, batches=(1, 5)) < 1e-4


def test_metadata_survives(tiny_model):
    onnx_path, pt, _, info = tiny_model
    assert read_onnx_info(onnx_path) == info
    assert OnnxBackend(onnx_path).info == info
    assert load_torch(pt)[1] == info
    model = onnx.load(str(onnx_path))
    assert [i.name for i in model.graph.input] == [INPUT_NAME]
    assert [o.name for o in model.graph.output] == [OUTPUT_NAME]


def test_shipped_checkpoint_exports_to_the_same_heatmaps(tiny_model, tmp_path):
    _, pt, _, info = tiny_model
    net, info2 = load_torch(pt)
    diff = export_onnx(net, info2, tmp_path / "again.onnx")
    assert diff < 1e-4
    x = np.random.default_rng(1).standard_normal((3, 3, *info.model.input_hw)).astype(np.float32)
    np.testing.assert_allclose(OnnxBackend(tmp_path / "again.onnx")(x), TorchBackend(pt)(x), atol=1e-4)


def test_a_model_with_an_odd_innermost_level_exports_with_batch_parity(tmp_path):
    """28x28 heatmaps (depth 3 pools 7x7 to 3x3, then upsamples to a fixed 7x7): the graph
    stays static in its spatial sizes and dynamic in its batch."""
    from tracker.core.codec import HeatmapCodec
    from tracker.core.model import FAN
    from tracker.core.model_config import ModelConfig
    from tracker.core.modelfile import ModelInfo

    cfg = ModelConfig(stacks=1, width=16, depth=3, stem_width=8, input_hw=(112, 112), heatmap_hw=(28, 28))
    info = ModelInfo("odd", cfg, HeatmapCodec(input_hw=cfg.input_hw, heatmap_hw=cfg.heatmap_hw))
    net = FAN(cfg).eval()
    with torch.no_grad():  # untrained BN statistics would leave the heatmaps near zero
        for p in net.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    path = tmp_path / "odd.onnx"
    export_onnx(net, info, path)
    assert parity(net, path, batches=(1, 3)) < 1e-4


def test_fp16_weights_halve_the_file_and_compute_what_the_shipped_pt_does(tiny_model, tmp_path):
    """`fp16_weights`: the file stores the shipped checkpoint's fp16 weights as they are (batch
    norms left unfolded, so no product of two rounded numbers is rounded again), each read
    through a Cast; onnxruntime's heatmaps are the .pt's, in float32 arithmetic."""
    onnx_path, _, net, info = tiny_model
    path, pt = tmp_path / "half.onnx", tmp_path / "half.pt"
    export_onnx(net, info, path, fp16_weights=True)
    save_shipped(net, info, pt)  # fp16, as shipped
    model, full = onnx.load(str(path)), onnx.load(str(onnx_path))
    weight_bytes = sum(len(i.raw_data) for i in model.graph.initializer)
    assert weight_bytes < 0.55 * sum(len(i.raw_data) for i in full.graph.initializer)
    assert {n.op_type for n in model.graph.node} >= {"Cast", "BatchNormalization"}
    x = np.random.default_rng(2).standard_normal((3, 3, *info.model.input_hw)).astype(np.float32)
    np.testing.assert_allclose(OnnxBackend(path)(x), TorchBackend(pt)(x), atol=1e-5)
    assert read_onnx_info(path) == info
