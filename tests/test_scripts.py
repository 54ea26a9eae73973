"""Every script of scripts/ still starts and still imports what exists in the package.

The scripts are not part of the package, so nothing else would notice when they rot. Each one
found by globbing scripts/*.py gets, automatically:

- `--help` in a fresh process: exit status 0, and every option its source declares with
  `add_argument("--...")` named in the usage text;
- a check that every `medaka_heart` name it imports exists, including the imports inside
  functions, which `--help` never reaches (heavy imports stay lazy so that `--help` is instant).

Cheap real runs in their own test files (animate_frame, benchmark, pairs_dice).
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).parents[1] / "scripts"
NAMES = sorted(p.stem for p in SCRIPTS.glob("*.py"))


def declared_options(source: str) -> list[str]:
    """The option strings ("--x", "-x") of every `add_argument` call in a script's source."""
    options = []
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "add_argument"):
            options += [a.value for a in node.args
                        if isinstance(a, ast.Constant) and str(a.value).startswith("-")]
    return options


def package_imports(source: str) -> list[tuple[str, str | None]]:
    """(module, name) of every `medaka_heart` import anywhere in a source; name None for
    `import medaka_heart.x`."""
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "medaka_heart":
            found += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names
                      if alias.name.split(".")[0] == "medaka_heart"]
    return found


def test_the_scripts_are_found():
    assert "benchmark" in NAMES
    assert len(NAMES) >= 5


def test_the_source_helpers_see_options_and_lazy_imports():
    source = (
        "import medaka_heart.cli\n"
        "def main():\n"
        "    from medaka_heart.batch import run_batch, gone\n"
        "    parser.add_argument('--frames', '-f', type=int)\n"
        "    parser.add_argument('root')\n"
    )
    assert declared_options(source) == ["--frames", "-f"]
    assert package_imports(source) == [("medaka_heart.cli", None),
                                       ("medaka_heart.batch", "run_batch"),
                                       ("medaka_heart.batch", "gone")]


@pytest.mark.parametrize("name", NAMES)
def test_help_runs_and_lists_the_options(name):
    path = SCRIPTS / f"{name}.py"
    run = subprocess.run([sys.executable, str(path), "--help"], capture_output=True, text=True,
                         timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    assert "usage:" in run.stdout.lower()
    missing = [o for o in declared_options(path.read_text()) if o not in run.stdout]
    assert missing == []


@pytest.mark.parametrize("name", NAMES)
def test_every_package_name_it_imports_exists(name):
    missing = []
    for module, attr in package_imports((SCRIPTS / f"{name}.py").read_text()):
        try:
            imported = importlib.import_module(module)
        except ImportError as err:
            missing.append(f"{module} ({err})")
            continue
        if attr is not None and not hasattr(imported, attr):
            try:  # `from package import submodule`
                importlib.import_module(f"{module}.{attr}")
            except ImportError:
                missing.append(f"{module}.{attr}")
    assert missing == []

