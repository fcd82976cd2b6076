"""The notebooks as committed, without running them (CI runs them: `make notebooks`): no
outputs, the one QUICK variable at the top, the data found as the library finds it, and
imports of signdigits, its dependencies (with the notebooks extra) and the standard
library only."""

from __future__ import annotations

import ast
import json
import re
import sys
from functools import cache
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11 and later

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ["01-logistic-regression.ipynb", "02-neural-networks.ipynb", "03-ten-digits.ipynb"]
QUICK = "os.environ.get('CI') == 'true'"
"""The value of QUICK, as ``ast.unparse`` writes it: true when the notebook runs under CI."""


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@cache
def _allowed_distributions() -> frozenset[str]:
    """The project's dependencies and its notebooks extra, by canonical name."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = [*project["dependencies"], *project["optional-dependencies"]["notebooks"]]
    names = (re.match(r"[A-Za-z0-9._-]+", requirement).group() for requirement in requirements)
    return frozenset(_canonical(name) for name in names)


@cache
def _providers() -> dict[str, list[str]]:
    """Each installed top-level module and the distributions that install it."""
    return packages_distributions()


def _allowed(module: str) -> bool:
    """Whether a notebook may import the top-level ``module``."""
    if module == "signdigits" or module in sys.stdlib_module_names:
        return True
    providers = _providers().get(module, [])
    return any(_canonical(name) in _allowed_distributions() for name in providers)


def _code_cells(name: str) -> list[dict]:
    notebook = json.loads((ROOT / "notebooks" / name).read_text(encoding="utf-8"))
    return [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]


def _tree(cell: dict) -> ast.Module:
    """A code cell's Python, its IPython magics (``%matplotlib inline``) left out."""
    source = "".join(cell["source"])
    lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in source.split("\n")]
    return ast.parse("\n".join(lines))


def test_the_three_notebooks_are_there():
    assert sorted(path.name for path in (ROOT / "notebooks").glob("*.ipynb")) == NOTEBOOKS


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_without_outputs(name):
    for number, cell in enumerate(_code_cells(name), start=1):
        assert cell["outputs"] == [], f"{name}: code cell {number} has outputs"
        assert cell["execution_count"] is None, f"{name}: code cell {number} was run"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_quick_is_set_at_the_top_and_used(name):
    cells = [_tree(cell) for cell in _code_cells(name)]
    values = [
        ast.unparse(node.value)
        for node in cells[0].body
        if isinstance(node, ast.Assign)
        and [ast.unparse(target) for target in node.targets] == ["QUICK"]
    ]
    assert values == [QUICK], f"{name}: the first code cell must set QUICK = {QUICK}"
    reads = [
        node
        for tree in cells
        for node in ast.walk(tree)
        if isinstance(node, ast.Name) and node.id == "QUICK" and isinstance(node.ctx, ast.Load)
    ]
    assert reads, f"{name}: QUICK is set but nothing uses it"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_the_data_is_found_as_the_library_finds_it(name):
    calls = [
        node
        for cell in _code_cells(name)
        for node in ast.walk(_tree(cell))
        if isinstance(node, ast.Call) and ast.unparse(node.func).endswith("load_dataset")
    ]
    assert calls, f"{name} does not load the dataset"
    for call in calls:
        assert not call.args and not call.keywords, f"{name}: {ast.unparse(call)} names a path"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_imports_only_signdigits_its_dependencies_and_the_standard_library(name):
    imported = set()
    for cell in _code_cells(name):
        for node in ast.walk(_tree(cell)):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{name}: relative import of {node.module!r}"
                imported.add(node.module.split(".")[0])
    assert "signdigits" in imported
    others = sorted(module for module in imported if not _allowed(module))
    assert not others, f"{name} imports {others}: not signdigits, its dependencies or the stdlib"


def test_the_import_rule_itself():
    assert all(map(_allowed, ["signdigits", "os", "sklearn", "PIL", "onnxruntime", "numpy"]))
    assert not any(map(_allowed, ["torch", "pandas", "hypothesis", "no_such_module"]))
