"""What installing ucwa_async brings: the client alone; the simulator and its pytest plugin
only with the ``testing`` extra (or ``cli``), and the plugin only when a project opts in."""

from __future__ import annotations

import re
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


def test_a_subset_run_has_no_coverage_gate_the_ci_has_it() -> None:
    pytest_config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    addopts = pytest_config["tool"]["pytest"]["ini_options"]["addopts"]
    assert "--cov" not in addopts
    assert "--cov-fail-under=95" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_plain_pytest_collects_the_integration_tests() -> None:
    # The console script, not `python -m pytest`: the repository root is not on sys.path.
    script = Path(sys.executable).with_name("pytest")
    proc = subprocess.run(
        [str(script), "--collect-only", "-q", "-p", "no:cacheprovider", "tests/integration"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert re.search(r"^\d{3,} tests collected", proc.stdout, re.M), proc.stdout[-3000:]
