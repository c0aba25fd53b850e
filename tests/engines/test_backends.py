"""The backend protocol and the registry: every registered backend declares what the registry
needs; onnxruntime and torch on the same input give the same heatmaps and the same metadata;
bad names, paths, options and files give clear errors."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from tests.tracker.runtime_fixtures import tiny_model
from tracker.core.modelfile import ModelFileError
from tracker.engines import registry
from tracker.engines.backend import (
    PRECISIONS,
    Backend,
    BackendOptions,
    BackendUnavailable,
    check_input,
    choose_precision,
)
from tracker.engines.onnxruntime_backend import OnnxBackend
from tracker.engines.registry import BACKENDS, available_backends, backend_class, load_backend
from tracker.engines.torch_backend import TorchBackend


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def batch():
    return np.random.default_rng(0).standard_normal((3, 3, 64, 64)).astype(np.float32)


def test_onnx_backend_shapes_and_batch_consistency(model, batch):
    be = OnnxBackend(model, threads=1)
    assert isinstance(be, Backend)
    assert be.info.name == "tiny" and be.info.model.input_hw == (64, 64)
    out = be(batch)
    assert out.shape == (3, 68, 16, 16) and out.dtype == np.float32
    single = np.concatenate([be(batch[i:i + 1]) for i in range(3)])
    np.testing.assert_allclose(out, single, atol=1e-5)


def test_every_cpu_backend_gives_the_same_heatmaps_and_metadata(model, batch):
    onnx, torch_ = load_backend("onnxruntime", model), load_backend("torch", model)
    assert isinstance(torch_, TorchBackend) and torch_.path.suffix == ".pt"  # sibling of .onnx
    assert onnx.info == torch_.info
    np.testing.assert_allclose(onnx(batch), torch_(batch), atol=1e-4)
    # a .pt path given to onnxruntime loads the .onnx beside it
    assert load_backend("onnxruntime", model.with_suffix(".pt")).path == model


def test_input_is_checked(model):
    be = OnnxBackend(model)
    with pytest.raises(ValueError, match=r"\(B, 3, 64, 64\)"):
        be(np.zeros((1, 3, 32, 32), np.float32))
    with pytest.raises(ValueError):
        check_input(np.zeros((3, 64, 64), np.float32), be.info)
    # float64 and non-contiguous input are converted
    x = np.zeros((1, 64, 64, 3), np.float64).transpose(0, 3, 1, 2)
    assert check_input(x, be.info).flags["C_CONTIGUOUS"]


def test_bad_names_and_paths(tmp_path, model):
    with pytest.raises(ValueError, match="unknown backend"):
        load_backend("openvino", model)
    with pytest.raises(ModelFileError, match="no such model file"):
        load_backend("onnxruntime", tmp_path / "missing.onnx")
    with pytest.raises(ModelFileError, match="is a folder"):
        load_backend("onnxruntime", tmp_path)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelFileError, match="junk.onnx"):
        load_backend("onnxruntime", junk)
    lonely = tmp_path / "lonely.onnx"
    lonely.write_bytes(model.read_bytes())
    with pytest.raises(ModelFileError, match=r"lonely\.pt: no such model file"):
        load_backend("torch", lonely)
    with pytest.raises(ValueError, match="threads"):
        OnnxBackend(model, threads=0)


def test_missing_bundled_model_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "default_model_path", lambda suffix=".onnx": tmp_path / f"rt-m{suffix}")
    with pytest.raises(ModelFileError, match="bundled model .* is not there"):
        load_backend("onnxruntime")
    with pytest.raises(ModelFileError, match="bundled model"):
        load_backend("torch")


def test_gpu_backends_fail_clearly_without_a_gpu(model):
    state = available_backends()
    assert set(state) == {"onnxruntime", "torch", "torch-cuda", "tensorrt"}
    assert state["onnxruntime"].startswith("available")
    for name in ("torch-cuda", "tensorrt"):
        if state[name].startswith("available"):
            continue  # a machine with a GPU: tests/engines covers these
        with pytest.raises(BackendUnavailable, match=name):
            load_backend(name, model)


@pytest.mark.parametrize("name", list(BACKENDS))
def test_every_registered_backend_declares_what_the_registry_needs(name):
    cls = backend_class(name)
    assert cls.__name__ == BACKENDS[name][1] and cls.name == name
    assert cls.model_suffix in (".onnx", ".pt")
    assert cls.precisions and set(cls.precisions) <= set(PRECISIONS)
    assert callable(cls.from_options) and callable(cls.availability)
    assert registry.DEFAULT_BACKEND == "onnxruntime"


def test_options_are_validated_and_precisions_never_swapped(model):
    for bad in (dict(threads=0), dict(precision="bf16"), dict(batches=()), dict(batches=(0, 4))):
        with pytest.raises(ValueError):
            BackendOptions(**bad)
    assert BackendOptions(batches=[4, 1]).batches == (4, 1)
    assert choose_precision("x", ("fp16", "fp32"), None) == "fp16"
    with pytest.raises(ValueError, match="the onnxruntime backend runs fp32, not fp16"):
        load_backend("onnxruntime", model, options=BackendOptions(precision="fp16"))
    with pytest.raises(ValueError, match="runs fp32, not int8"):
        load_backend("torch", model, options=BackendOptions(precision="int8"))
    with pytest.raises(ValueError, match="threads in options"):
        load_backend("onnxruntime", model, 2, BackendOptions(threads=2))
    be = load_backend("onnxruntime", model, options=BackendOptions(threads=1, precision="fp32"))
    assert isinstance(be, OnnxBackend)


def _computed_imports(path: Path) -> list[int]:
    """Lines of `path` that import a module by a computed name (importlib.import_module or
    __import__)."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
            if name in ("import_module", "__import__"):
                lines.append(node.lineno)
    return lines


def test_the_registry_holds_the_only_computed_import_of_engines():
    engines_dir = Path(registry.__file__).parent
    found = {p.name: _computed_imports(p) for p in sorted(engines_dir.rglob("*.py"))}
    assert {name for name, lines in found.items() if lines} == {"registry.py"}
    assert len(found["registry.py"]) == 1


def test_a_bundled_model_is_named_without_a_path(tmp_path, monkeypatch):
    from tracker.core.modelfile import MODELS_DIR, ModelFileError
    from tracker.engines.registry import resolve_model

    assert resolve_model("rt-m") == MODELS_DIR / "rt-m.onnx"
    assert resolve_model("rt-m", ".pt") == MODELS_DIR / "rt-m.pt"
    with pytest.raises(ModelFileError, match="nor a bundled model"):
        resolve_model("no-such-model")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rt-m").write_bytes(b"")  # a file of that name here wins
    assert resolve_model("rt-m") == Path("rt-m")


@pytest.mark.parametrize("spin", [True, False])
def test_onnxruntime_spinning_follows_the_options(model, batch, monkeypatch, spin):
    import onnxruntime as ort

    from tracker.engines.backend import BackendOptions

    seen = {}
    real = ort.SessionOptions.add_session_config_entry

    def record(self, key, value):
        seen[key] = value
        return real(self, key, value)

    monkeypatch.setattr(ort.SessionOptions, "add_session_config_entry", record)
    be = load_backend("onnxruntime", model, options=BackendOptions(threads=2, spin=spin))
    assert seen["session.intra_op.allow_spinning"] == ("1" if spin else "0")
    np.testing.assert_allclose(be(batch), OnnxBackend(model, threads=1)(batch), atol=1e-5)
