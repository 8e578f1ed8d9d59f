"""The test suite against the built wheel, per supported Python (run by .ci/run).

``nox`` (the wheel alone, then the suite on 3.12 and 3.13) or ``nox -s tests-3.11``.
Each ``tests`` session installs ``dist/*.whl`` (built first if missing) with its ``test``
extra in a fresh venv, copies what the tests read (tests/, examples/, benchmarks/, docs/,
.ci/, README.md, pyproject.toml: never ucwa_async/) to a scratch directory, proves that
``import ucwa_async`` there finds the installed wheel, and runs the README's test command
from there.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
DIST = ROOT / "dist"
COPIED = ["tests", "examples", "benchmarks", "docs", ".ci", "README.md", "pyproject.toml"]
# Reads the source tree on purpose (the console script's declaration in ucwa_async/).
SOURCE_ONLY = ["tests/cli/test_demo.py::test_console_script_is_declared"]

# .ci/run: the README command already runs the suite on 3.11 from the source tree; the
# wheel (pure Python: the same file on every version) is proven on 3.12 and 3.13, one
# after the other (two suites at once on 2 cores only slow each other down).
# `nox -s tests-3.11` runs it on 3.11 too.
nox.options.sessions = ["bare", "tests-3.12", "tests-3.13"]
nox.options.reuse_existing_virtualenvs = False


def _wheel(session: nox.Session) -> Path:
    wheels = sorted(DIST.glob("ucwa_async-*.whl"))
    if not wheels:
        session.install("build")
        session.run("python", "-m", "build", "--wheel", "--outdir", str(DIST), str(ROOT))
        wheels = sorted(DIST.glob("ucwa_async-*.whl"))
    if len(wheels) != 1:
        session.error(f"expected one wheel in {DIST}, found {[w.name for w in wheels]}")
    return wheels[0]


@nox.session(python=["3.11", "3.12", "3.13"])
def tests(session: nox.Session) -> None:
    """The fast suite against the installed wheel (not the source tree)."""
    session.install(f"{_wheel(session)}[test]")
    scratch = Path(session.create_tmp()) / "project"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(
                source, scratch / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
        else:
            shutil.copy2(source, scratch / name)
    session.chdir(scratch)
    session.run(
        "python",
        "-c",
        "import sys, ucwa_async; f = ucwa_async.__file__; print('ucwa_async from', f); "
        "sys.exit(0 if 'site-packages' in f else 'not the installed wheel: ' + f)",
    )
    deselect = [arg for test in SOURCE_ONLY for arg in ("--deselect", test)]
    session.run(
        "python", "-m", "pytest", "-n", "6", "--dist", "worksteal", "-p", "no:cacheprovider",
        *deselect, *session.posargs,
    )  # fmt: skip


@nox.session(python="3.11")
def bare(session: nox.Session) -> None:
    """The wheel without extras: the client imports, the simulator's dependencies are absent."""
    session.install(str(_wheel(session)))
    session.chdir(session.create_tmp())
    session.run(
        "python",
        "-c",
        "import importlib.metadata as md, importlib.util as u, ucwa_async; "
        "assert 'site-packages' in ucwa_async.__file__, ucwa_async.__file__; "
        "assert u.find_spec('xmltodict') is None, 'xmltodict installed without an extra'; "
        "assert not [e for e in md.entry_points(group='pytest11') if 'ucwa' in e.value]; "
        "print('bare wheel: client only, ok')",
    )
