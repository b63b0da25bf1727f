"""The import arrows of ../shared/architecture.md, enforced (issue 13).

Read statically from the source (ast), so it takes milliseconds and imports nothing:
- the four pure layers (signals, decisions, execution, governance) and views never
  import ``store`` or ``services``; arrows only point down;
- ``store`` imports only its tables, ``governance`` (the actor on an audit event) and the
  cross-cutting modules;
- pages, app.py and the command line import only ``services`` and ``views``;
- no Streamlit anywhere in ``rebal_core``.
``errors``, ``progress`` and ``format`` are cross-cutting leaves: every layer may use them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "rebal_core"
LEAVES = {
    "errors",
    "progress",
    "format",
    "cluster",
    "chunks",
    "__version__",
}  # cluster: where distributed work runs, chunks: how a year of rows is walked (issue 15)
MAY_IMPORT = {
    "signals": set(),
    "decisions": {"signals"},
    "execution": {"decisions", "signals"},
    "governance": set(),
    "views": {"decisions", "signals", "governance", "execution"},
    "store": {"governance"},
    "services": {"signals", "decisions", "execution", "governance", "store", "views"},
    "cli": {"services", "views"},
    "__main__": {"cli"},
    "page": {"services", "views"},
}


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported rebal_core module) of every import in ``path``, lazy ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "rebal_core":
            if node.module == "rebal_core":
                found += [(node.lineno, f"rebal_core.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "rebal_core"]
    return found


def _layer_of_module(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "rebal_core"


def _layer_of_file(path: Path) -> str:
    if CORE in path.parents:
        rel = path.relative_to(CORE)
        return rel.parts[0] if len(rel.parts) > 1 else rel.stem
    return "page"


def _sources() -> list[Path]:
    return sorted([*CORE.rglob("*.py"), ROOT / "app.py", *(ROOT / "pages").rglob("*.py")])


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_arrows_point_down(path: Path):
    layer = _layer_of_file(path)
    if layer in LEAVES or layer == "__init__":
        assert not [m for _, m in _imports(path) if _layer_of_module(m) not in LEAVES], f"{path.name} is a leaf"
        return
    allowed = MAY_IMPORT[layer] | LEAVES | {layer}
    wrong = [
        f"line {n}: {m}"
        for n, m in _imports(path)
        if _layer_of_module(m) not in allowed and not (layer == "page" and m.startswith("pages"))
    ]
    assert not wrong, f"{path.relative_to(ROOT)} ({layer}) may import only {sorted(allowed)}; it imports " + "; ".join(
        wrong
    )


def test_no_streamlit_in_the_engine():
    for path in CORE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            assert not any(n.split(".")[0] == "streamlit" for n in names), f"{path} imports streamlit"


def test_every_folder_says_what_lives_there_and_what_it_may_import():
    for init in CORE.rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert len(doc) > 80, f"{init.relative_to(ROOT)} opens without saying what lives there"
        if init.parent != CORE and init.parent.name != "services":
            assert "import" in doc, f"{init.relative_to(ROOT)} does not say what it may import"


def test_the_check_catches_a_page_reaching_into_the_store(tmp_path):
    """The check itself can fail: a page importing the store is flagged."""
    page = tmp_path / "x.py"
    page.write_text("from rebal_core import store\nfrom rebal_core.decisions.solvers.optimizer import plan\n")
    bad = [m for _, m in _imports(page) if _layer_of_module(m) not in MAY_IMPORT["page"] | LEAVES]
    assert bad == ["rebal_core.store", "rebal_core.decisions.solvers.optimizer"]


def test_only_the_store_touches_the_database():
    """Outside ``store/`` nothing imports sqlmodel or SQLAlchemy's sessions and queries: services pass
    the engine handle along and catch SQLAlchemy's errors, the store does the rest."""
    for path in [*CORE.rglob("*.py"), ROOT / "app.py", *(ROOT / "pages").rglob("*.py")]:
        if (CORE / "store") in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                root = node.module.split(".")[0]
                assert root != "sqlmodel", f"{path.relative_to(ROOT)} imports sqlmodel"
                if node.module == "sqlalchemy":
                    names = {a.name for a in node.names}
                    assert names <= {"Engine"}, f"{path.relative_to(ROOT)} imports {names - {'Engine'}} from sqlalchemy"
            elif isinstance(node, ast.Import):
                assert not any(a.name.split(".")[0] == "sqlmodel" for a in node.names), path


def test_every_module_uses_the_one_progress_sink_and_refusals():
    """No module defines its own progress type, quiet sink or refusal class any more."""
    root = CORE
    for path in root.rglob("*.py"):
        if path.name in ("progress.py", "errors.py"):
            continue
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "Progress" for t in node.targets):
                raise AssertionError(f"{path.name} defines Progress again")
            if isinstance(node, ast.FunctionDef) and node.name in ("_quiet", "quiet"):
                raise AssertionError(f"{path.name} defines a quiet sink again")
            refusal = isinstance(node, ast.ClassDef) and any(
                getattr(b, "id", "") in ("Exception", "ValueError", "PermissionError") for b in node.bases
            )
            if refusal and node.name not in ("OutOfTime", "Cancelled"):  # solver control flow, not refusals
                raise AssertionError(f"{path.name} defines the refusal {node.name} outside errors.py")


def test_unit_tests_touch_no_files_or_database():
    """tests/unit is pure: no test takes a file or store fixture, none opens, writes or connects."""
    banned_fixtures = {
        "tmp_path",
        "tmp_path_factory",
        "small_bundle",
        "small_net",
        "bundle_copy",
        "engine",
        "loaded_db",
    }
    banned_calls = {
        "open",
        "write_text",
        "write_bytes",
        "read_text",
        "make_engine",
        "connect",
        "load_bundle",
        "synthesize",
    }
    for path in (ROOT / "tests" / "unit").glob("test_*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef):
                taken = {a.arg for a in node.args.args} & banned_fixtures
                assert not taken, f"{path.name}::{node.name} takes {taken}: an integration test"
            if isinstance(node, ast.Call):
                name = getattr(node.func, "attr", getattr(node.func, "id", ""))
                assert name not in banned_calls, f"{path.name}:{node.lineno} calls {name}: an integration test"
