"""The sans-IO set imports neither asyncio nor aiohttp, directly or transitively.

Two checks: a static one over the import graph of our own modules (AST; catches an
import inside a function or under TYPE_CHECKING too), and a runtime one that imports the
sans-IO modules in a fresh interpreter (catches third-party dependencies pulling IO in).
Both skip ``ucwa_async/__init__.py``: it re-exports the IO shell, legitimately.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import ucwa_async

PACKAGE_DIR = Path(ucwa_async.__file__).resolve().parent
FORBIDDEN = frozenset({"asyncio", "aiohttp"})


def sans_io_modules(package_dir: Path) -> list[str]:
    core = sorted(
        f"ucwa_async._core.{p.stem}" if p.stem != "__init__" else "ucwa_async._core"
        for p in (package_dir / "_core").glob("*.py")
    )
    return core


def _module_file(package_dir: Path, module: str) -> Path | None:
    """The file of a ``ucwa_async`` module, None for the top package and non-modules."""
    parts = module.split(".")
    if parts[0] != "ucwa_async" or len(parts) == 1:
        return None  # the top-level __init__ is the IO shell's façade: not followed
    base = package_dir.joinpath(*parts[1:])
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def _imports(path: Path, module: str) -> set[str]:
    """Every module name ``path`` may import (absolute names, submodules included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, node.module] if node.module else anchor)
            else:
                base = node.module or ""
            found.add(base)
            # "from pkg import name" may import the submodule pkg.name.
            found.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call):
            # importlib.import_module("x") / __import__("x") with a literal name.
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in {"import_module", "__import__"} and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    found.add(arg.value)
    return found


def forbidden_imports(package_dir: Path, roots: list[str]) -> dict[str, list[str]]:
    """``{root module: [import chain to a forbidden module], ...}`` (empty when clean)."""
    problems: dict[str, list[str]] = {}
    for root in roots:
        seen: set[str] = set()
        stack: list[tuple[str, list[str]]] = [(root, [root])]
        while stack:
            module, chain = stack.pop()
            if module in seen:
                continue
            seen.add(module)
            path = _module_file(package_dir, module)
            if path is None:
                continue
            for imported in sorted(_imports(path, module)):
                if imported.split(".")[0] in FORBIDDEN:
                    problems.setdefault(root, [*chain, imported])
                elif imported.startswith("ucwa_async."):
                    # Importing a submodule runs its parent packages' __init__ too.
                    parts = imported.split(".")
                    for i in range(2, len(parts) + 1):
                        stack.append((".".join(parts[:i]), [*chain, ".".join(parts[:i])]))
    return problems


def test_sans_io_set_is_complete() -> None:
    modules = sans_io_modules(PACKAGE_DIR)
    for expected in (
        "ucwa_async._core",
        "ucwa_async._core.backoff",
        "ucwa_async._core.channel",
        "ucwa_async._core.correlate",
        "ucwa_async._core.errors",
        "ucwa_async._core.responses",
        "ucwa_async._core.urls",
        "ucwa_async._core.wire",
        "ucwa_async._core.models",
        "ucwa_async._core.converter",
    ):
        assert expected in modules
        assert _module_file(PACKAGE_DIR, expected) is not None, expected


def test_sans_io_modules_import_no_io_statically() -> None:
    assert forbidden_imports(PACKAGE_DIR, sans_io_modules(PACKAGE_DIR)) == {}


def test_sans_io_package_imports_nothing_of_the_shell() -> None:
    outside: dict[str, list[str]] = {}
    for module in sans_io_modules(PACKAGE_DIR):
        path = _module_file(PACKAGE_DIR, module)
        assert path is not None
        for imported in _imports(path, module):
            if imported.startswith("ucwa_async") and not (
                imported == "ucwa_async._core" or imported.startswith("ucwa_async._core.")
            ):
                outside.setdefault(module, []).append(imported)
    assert outside == {}


def test_sans_io_modules_import_no_io_at_runtime() -> None:
    # A bare stand-in for the top package, so its IO-shell re-exports are not run.
    script = textwrap.dedent(
        f"""
        import importlib, sys, types
        package = types.ModuleType("ucwa_async")
        package.__path__ = [{str(PACKAGE_DIR)!r}]
        sys.modules["ucwa_async"] = package
        for name in {sans_io_modules(PACKAGE_DIR)!r}:
            importlib.import_module(name)
        leaked = sorted(m for m in sys.modules if m.split(".")[0] in {sorted(FORBIDDEN)!r})
        print(",".join(leaked))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == ""


# -- the checker itself catches what it should ------------------------------------------------


def _write(root: Path, relative: str, source: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source), encoding="utf-8")


@pytest.mark.parametrize(
    ("files", "expected_chain"),
    [
        (
            {"_core/a.py": "import asyncio\n"},
            ["ucwa_async._core.a", "asyncio"],
        ),
        (
            {
                "_core/a.py": "from ucwa_async._core import b\n",
                "_core/b.py": "import aiohttp.web\n",
            },
            ["ucwa_async._core.a", "ucwa_async._core.b", "aiohttp.web"],
        ),
        (
            {"_core/a.py": "from . import b\n", "_core/b.py": "from .. import _http\n"},
            ["ucwa_async._core.a", "ucwa_async._core.b", "ucwa_async._http", "aiohttp"],
        ),
        (
            {"_core/a.py": "def f():\n    import asyncio\n"},
            ["ucwa_async._core.a", "asyncio"],
        ),
        (
            {"_core/a.py": "import importlib\nimportlib.import_module('aiohttp')\n"},
            ["ucwa_async._core.a", "aiohttp"],
        ),
        (
            {"_core/__init__.py": "from asyncio import sleep\n", "_core/a.py": "x = 1\n"},
            ["ucwa_async._core", "asyncio"],
        ),
    ],
)
def test_checker_finds_io_imports(
    tmp_path: Path, files: dict[str, str], expected_chain: list[str]
) -> None:
    package = tmp_path / "ucwa_async"
    _write(package, "__init__.py", "import aiohttp\n")  # never followed
    _write(package, "_http.py", "import aiohttp\n")
    files = {"_core/__init__.py": "", **files}
    for relative, source in files.items():
        _write(package, relative, source)
    problems = forbidden_imports(package, [expected_chain[0]])
    assert problems == {expected_chain[0]: expected_chain}


def test_checker_ignores_the_top_level_package(tmp_path: Path) -> None:
    package = tmp_path / "ucwa_async"
    _write(package, "__init__.py", "import aiohttp\nimport asyncio\n")
    _write(package, "_core/__init__.py", "")
    _write(package, "_core/a.py", "from ucwa_async import _core\nimport ucwa_async\n")
    assert forbidden_imports(package, ["ucwa_async._core.a"]) == {}
