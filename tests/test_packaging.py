"""What installing ucwa_async brings: the client alone; the simulator and its pytest plugin
only with the ``testing`` extra (or ``cli``), and the plugin only when a project opts in."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def test_the_client_does_not_import_the_simulators_dependencies() -> None:
    code = (
        "import sys, ucwa_async, ucwa_async.cli;"
        "loaded = {'xmltodict', 'pytest', 'ucwa_async.testing'} & set(sys.modules);"
        "sys.exit(', '.join(sorted(loaded)) or 0)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr


def test_xmltodict_only_in_the_extras_that_run_the_simulator() -> None:
    assert not any(dep.startswith("xmltodict") for dep in PROJECT["dependencies"])
    extras = PROJECT["optional-dependencies"]
    for extra in ("testing", "cli", "test"):
        assert any(dep.startswith("xmltodict>=1.0") for dep in extras[extra]), extra


def test_the_pytest_plugin_is_opt_in() -> None:
    # No pytest11 entry point: pytest would load the simulator in every project's run.
    assert "pytest11" not in PROJECT.get("entry-points", {})
    conftest = (ROOT / "tests" / "conftest.py").read_text(encoding="utf-8")
    assert 'pytest_plugins = ["ucwa_async.testing.plugin"]' in conftest
