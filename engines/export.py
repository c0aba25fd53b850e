"""ONNX export of a FAN with the tracker's metadata, checked against torch with onnxruntime."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch

from tracker.core.modelfile import INPUT_NAME, METADATA_KEY, OUTPUT_NAME, ModelInfo


def export_onnx(net: torch.nn.Module, info: ModelInfo, path: str | Path, opset: int = 17,
                check: bool = True, atol: float = 1e-4, fp16_weights: bool = False) -> float:
    """Write `net` to `path` with a dynamic batch axis and `info` in the metadata.

    fp16_weights: round the weights to fp16 first (the shipped .pt's weights) and store them
    so, each read through a Cast to float32 (`store_weights_fp16`): half the file, the same
    float32 arithmetic. With `check`, runs the file with onnxruntime on random input at batch
    1 and 3 and raises if the heatmaps differ from torch's (the rounded weights' when
    fp16_weights) by more than `atol`; returns the max abs difference.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fp16_weights:
        net = copy.deepcopy(net).half()
    net = net.float().eval().cpu()
    h, w = info.model.input_hw
    dummy = torch.zeros(1, 3, h, w)
    torch.onnx.export(net, (dummy,), str(path), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                      dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                      opset_version=opset, dynamo=False,
                      # unfolded, batch norms stay nodes with the rounded weights as they are
                      # (onnxruntime folds them into the convolutions when it loads the file)
                      do_constant_folding=not fp16_weights)
    if fp16_weights:
        store_weights_fp16(path)
    _write_onnx_info(path, info)
    if not check:
        return float("nan")
    return parity(net, path, atol=atol)


def store_weights_fp16(path: str | Path) -> int:
    """Store every float32 initializer of the ONNX file at `path` that fp16 holds exactly as
    fp16, read through a Cast node to float32 under its old name, in place; returns how many.

    Lossless by construction (only exact values move), and free at run time: onnxruntime and
    TensorRT fold a Cast of a constant when they load the model, so the network computes in
    float32 as before, from a file half the size.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    kept, casts = [], []
    for init in graph.initializer:
        arr = numpy_helper.to_array(init) if init.data_type == TensorProto.FLOAT else None
        # (a tensor under 16 values is not worth a node of its own)
        if arr is None or arr.size < 16 or not np.array_equal(arr.astype(np.float16).astype(np.float32), arr):
            kept.append(init)
            continue
        stored = f"{init.name}__fp16"
        kept.append(numpy_helper.from_array(arr.astype(np.float16), stored))
        casts.append(helper.make_node("Cast", [stored], [init.name], to=TensorProto.FLOAT,
                                      name=f"{init.name}__to_fp32"))
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return len(casts)


def parity(net: torch.nn.Module, path: str | Path, batches: tuple[int, ...] = (1, 3),
           seed: int = 0, atol: float = 1e-4) -> float:
    """Max abs difference between torch and onnxruntime heatmaps on random input."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    shape = sess.get_inputs()[0].shape
    g = np.random.default_rng(seed)
    worst = 0.0
    for b in batches:
        x = g.standard_normal((b, 3, shape[2], shape[3])).astype(np.float32)
        with torch.no_grad():
            ref = net(torch.from_numpy(x)).numpy()
        out = sess.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
        worst = max(worst, float(np.abs(out - ref).max()))
    if worst > atol:
        raise RuntimeError(f"{path}: onnxruntime differs from torch by {worst:.2e} (> {atol:.0e})")
    return worst


def save_shipped(net: torch.nn.Module, info: ModelInfo, path: str | Path, half: bool = True) -> None:
    """A small torch checkpoint for the torch backends: {"model_info", "state_dict"}."""
    sd = {k: (v.half() if half and v.is_floating_point() else v) for k, v in net.state_dict().items()}
    torch.save({"model_info": info.to_json(), "state_dict": sd}, str(path))


def rewrite_info(path: str | Path, info: ModelInfo) -> None:
    """Replace the `ModelInfo` of a shipped model file (.onnx or .pt) in place; the weights
    are kept byte for byte."""
    path = Path(path)
    if path.suffix == ".onnx":
        _write_onnx_info(path, info)
    elif path.suffix == ".pt":
        ck = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(ck, dict) or "model_info" not in ck:
            raise ValueError(f"{path}: not a shipped model (a training checkpoint? ship it first)")
        torch.save({**ck, "model_info": info.to_json()}, str(path))
    else:
        raise ValueError(f"{path}: not a model file (.onnx or .pt)")


def _write_onnx_info(path: Path, info: ModelInfo) -> None:
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, info.to_json()
    model.doc_string = f"tracker model {info.name}"
    onnx.save(model, str(path))
