"""Shared test configuration.

Our own pytest plugin (the ``ucwa_simulator`` fixture) is registered for users
through the ``pytest11`` entry point. Entry-point plugins load before pytest-cov
starts measuring, which would hide the import-time lines of the package from
coverage; so this suite disables the entry point (``-p no:ucwa_async`` in
pyproject) and loads the same module here, after coverage has started.
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
