"""The layout's rules, checked on the source: which folder may import which, no computed
imports outside the backend registry, modules of one job and a few hundred lines, and a
distribution that installs every package under the project's name.

    tracker.core        <- imported by everything; imports no other part of the project
    tracker.engines     <- core only (the folder engines/)
    tracker.runtime     <- core, engines
    tracker.evaluation  <- core, engines, runtime
    tracker.batch       <- core, engines, runtime, evaluation
    tracker.cli         <- all of the above
    train               <- core (run from a checkout, not installed)
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 400

#: part -> (folder, the parts it may import)
PARTS = {
    "tracker.core": (ROOT / "tracker" / "core", {"tracker.core"}),
    "tracker.engines": (ROOT / "engines", {"tracker.core", "tracker.engines"}),
    "tracker.runtime": (ROOT / "tracker" / "runtime", {"tracker.core", "tracker.engines", "tracker.runtime"}),
    "tracker.evaluation": (ROOT / "tracker" / "evaluation",
                           {"tracker.core", "tracker.engines", "tracker.runtime", "tracker.evaluation"}),
    "tracker.batch": (ROOT / "tracker" / "batch", {"tracker.core", "tracker.engines", "tracker.runtime",
                                                   "tracker.evaluation", "tracker.batch"}),
    "tracker.cli": (ROOT / "tracker" / "cli", {"tracker", "tracker.core", "tracker.engines", "tracker.runtime",
                                               "tracker.evaluation", "tracker.batch", "tracker.cli"}),
    "train": (ROOT / "train", {"tracker.core", "train"}),
}


def _part(module: str) -> str | None:
    """The part a dotted module name belongs to (None: not the project's)."""
    if module == "train" or module.startswith("train."):
        return "train"
    if module == "engines" or module.startswith("engines."):
        return "engines (import it as tracker.engines)"
    for name in sorted(PARTS, key=len, reverse=True):
        if module == name or module.startswith(name + "."):
            return name
    return "tracker" if module == "tracker" or module.startswith("tracker.") else None


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every module `path` imports, at module level or inside functions: (line, name)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
            out += [(node.lineno, f"{node.module}.{a.name}") for a in node.names
                    if node.module in ("tracker", "tracker.engines", "tracker.runtime")]
    return out


def _sources():
    for part, (folder, _) in PARTS.items():
        for path in sorted(folder.rglob("*.py")):
            yield part, path


@pytest.mark.parametrize("part", list(PARTS))
def test_imports_run_one_way(part):
    folder, allowed = PARTS[part]
    wrong = []
    for path in sorted(folder.rglob("*.py")):
        for line, module in _imports(path):
            target = _part(module)
            if target is not None and target not in allowed and not (
                    target == "tracker" and module in ("tracker", "tracker.__version__")):
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {module} ({target})")
    assert not wrong, f"{part} may import only {sorted(allowed)}:\n" + "\n".join(wrong)


def test_the_checker_sees_a_wrong_arrow(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from tracker.runtime.tracker import Tracker\n")
    assert [_part(m) for _, m in _imports(bad)] == ["tracker.runtime"]


def test_no_computed_imports_outside_the_backend_registry():
    found = []
    for _, path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
                if name in ("__import__", "import_module"):
                    found.append(str(path.relative_to(ROOT)))
    assert set(found) <= {"engines/registry.py"}, found


@pytest.mark.parametrize("part", list(PARTS))
def test_modules_stay_small(part):
    folder, _ = PARTS[part]
    big = {str(p.relative_to(ROOT)): n for p in folder.rglob("*.py")
           if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines: {big}"


def test_the_distribution_installs_every_package_under_the_projects_name():
    tomllib = pytest.importorskip("tomllib") if sys.version_info >= (3, 11) else pytest.importorskip("tomli")
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    dirs = {"tracker": ROOT / "tracker", **{k: ROOT / v for k, v in cfg["package-dir"].items()}}

    def folder(pkg: str) -> Path:
        for name in sorted(dirs, key=len, reverse=True):
            if pkg == name or pkg.startswith(name + "."):
                return dirs[name].joinpath(*pkg[len(name):].split(".")[1:])
        raise AssertionError(pkg)

    listed = set(cfg["packages"])
    assert all(p == "tracker" or p.startswith("tracker.") for p in listed)
    on_disk = set()
    for name, root in (("tracker", ROOT / "tracker"), ("tracker.engines", ROOT / "engines")):
        for init in root.rglob("__init__.py"):
            rel = init.parent.relative_to(root).parts
            on_disk.add(".".join((name, *rel)))
    assert listed == on_disk
    assert all((folder(p) / "__init__.py").is_file() for p in listed)
