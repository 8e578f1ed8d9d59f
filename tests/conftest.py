"""Shared test configuration.

The ``ucwa_simulator`` fixture is our own pytest plugin, which users opt into the same
way: ``pytest_plugins = ["ucwa_async.testing.plugin"]`` in their top-level conftest.py
(it is not an auto-loaded ``pytest11`` entry point, so it costs nothing to projects
that do not ask for it).
"""

pytest_plugins = ["ucwa_async.testing.plugin"]


def pytest_addoption(parser):  # type: ignore[no-untyped-def]  # (append-only file: no import)
    """``--soak-full``: run the fault soak at full length (tests/soak), not the CI bound."""
    parser.addoption(
        "--soak-full",
        action="store_true",
        default=False,
        help="run the fault soak with 1 500 operations per wire (default: the CI bound of 200)",
    )


def pytest_report_header() -> str:  # (append-only file: no import at the top)
    """Which ucwa_async this run tests: the source tree, or an installed wheel (noxfile.py)."""
    import ucwa_async

    return f"ucwa_async: {ucwa_async.__file__}"


def pytest_configure(config):  # type: ignore[no-untyped-def]  # (append-only file: no import)
    """Import hypothesis before any test runs. Its pytest plugin imports it at the terminal
    summary otherwise, and pytest then compiles it: on CPython 3.11.7 that compile fails
    with "SystemError: AST constructor recursion depth mismatch" after some test runs
    (tests/integration/test_hardening_auth.py run alone did it), an interpreter bug."""
    import hypothesis  # noqa: F401


def pytest_collection_finish(session):  # type: ignore[no-untyped-def]  # (append-only file)
    """Freeze what import and collection left (modules, test functions, parameters): the
    collector then skips them, so the ``gc.collect()`` each integration test ends with (and
    every automatic full pass) walks only what the tests themselves made, not the ~130 000
    objects of the loaded modules. Nothing a test creates is frozen, so a cycle, an unread
    task or an unclosed session it leaves is still found."""
    import gc

    gc.collect()
    gc.freeze()
