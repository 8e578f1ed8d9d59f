"""RereadWaves: resync re-reads come in waves, one at a time, at least ``interval`` apart."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ucwa_async._core.correlate import Correlator, check_operation_id, new_operation_id
from ucwa_async._core.rereads import RereadWaves


def test_first_resync_starts_a_wave_at_once() -> None:
    waves = RereadWaves(1.0)
    assert waves.requested(100.0) == 0.0
    assert waves.requested(100.0) is None  # already scheduled: covered
    waves.started(100.0)
    assert waves.running
    assert waves.finished(100.2) is None  # nothing asked meanwhile: no more waves
    assert not waves.running


def test_resyncs_during_a_wave_ask_for_exactly_one_more_after_the_interval() -> None:
    waves = RereadWaves(1.0)
    assert waves.requested(0.0) == 0.0
    waves.started(0.0)
    for moment in range(100):  # a resync on every poll
        assert waves.requested(0.001 * moment) is None
    assert waves.finished(0.3) == pytest.approx(0.7)  # 1 s after the last start
    assert waves.requested(0.5) is None  # the scheduled wave covers it
    waves.started(1.0)
    assert waves.finished(2.5) is None


def test_a_resync_long_after_the_last_wave_starts_at_once() -> None:
    waves = RereadWaves(1.0)
    waves.requested(0.0)
    waves.started(0.0)
    waves.finished(0.1)
    assert waves.requested(0.4) == pytest.approx(0.6)
    waves.started(1.0)
    waves.finished(1.1)
    assert waves.requested(5.0) == 0.0


def test_reset_forgets_everything() -> None:
    waves = RereadWaves(1.0)
    waves.requested(0.0)
    waves.started(0.0)
    waves.requested(0.1)
    waves.reset()
    assert not waves.running
    assert waves.requested(0.2) == pytest.approx(0.8)


@pytest.mark.parametrize("interval", [-1.0, float("nan"), float("inf")])
def test_interval_is_validated(interval: float) -> None:
    with pytest.raises(ValueError, match="interval"):
        RereadWaves(interval)


@pytest.mark.parametrize("good", ["a", "A-z_0.9:", "x" * 50, "0123456789abcdef" * 2])
def test_operation_id_accepted(good: str) -> None:
    assert check_operation_id(good) == good


@pytest.mark.parametrize("bad", ["", "x" * 51, "a b", "caf\u00e9", "a\n", "a/b", None, 7, b"ab"])
def test_operation_id_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="operation_id"):
        check_operation_id(bad)


def test_correlator_owner_and_is_pending() -> None:
    correlator = Correlator()
    correlator.expect("op1")
    assert correlator.is_pending("op1")
    assert correlator.owner("https://h/x/inv/1") is None
    correlator.bind("op1", "https://h/x/inv/1")
    assert correlator.owner("HTTPS://h/x/inv/1") == "op1"  # normalised
    assert correlator.owner("http://[bad") is None  # never raises
    assert correlator.owner("http://h:99999/x") is None
    correlator.finish("op1")
    assert not correlator.is_pending("op1")
    assert correlator.owner("https://h/x/inv/1") is None


class _Link:
    def __init__(self, href: str) -> None:
        self.href = href


class _Event:
    """Just what the correlator reads (an embedded resource with operationId and state)."""

    def __init__(self, kind: str, href: str, operation_id: str, state: str) -> None:
        self.type = kind
        self.link = _Link(href)
        self.operation_id = operation_id
        self.status = None
        self.reason = None
        self.resource = {"state": state}


def test_a_reused_operation_id_ignores_the_earlier_operations_events() -> None:
    correlator = Correlator()
    correlator.expect("order-42")
    correlator.bind("order-42", "https://h/inv/1")
    correlator.finish("order-42")  # cancelled, say
    correlator.expect("order-42")  # the caller's retry, same id: a new invitation
    assert correlator.is_pending("order-42")
    # A late (or duplicated) event of invitation 1 carries the same operationId.
    late = _Event("completed", "https://h/inv/1", "order-42", "Failed")
    assert correlator.feed(late) == []
    assert correlator.is_pending("order-42")
    # The new invitation's own events still match, before and after its 201.
    started = _Event("started", "https://h/inv/2", "order-42", "Connecting")
    assert [type(r).__name__ for r in correlator.feed(started)] == ["Progress"]
    correlator.bind("order-42", "https://h/inv/2")
    done = _Event("completed", "https://h/inv/2", "order-42", "Connected")
    assert [type(r).__name__ for r in correlator.feed(done)] == ["Succeeded"]
    assert not correlator.is_pending("order-42")


def test_new_operation_ids_are_valid_random_hex() -> None:
    ids = {new_operation_id() for _ in range(1000)}
    assert len(ids) == 1000
    for value in ids:
        assert len(value) == 32
        assert int(value, 16) >= 0  # hex digits only
        assert check_operation_id(value) == value


def test_a_forked_child_makes_other_operation_ids_than_its_parent() -> None:
    # A pre-forking server's workers must not repeat each other's ids: the generator is
    # seeded afresh in a child. Run in a single-threaded interpreter of its own.
    script = (
        "import os\n"
        "from ucwa_async._core.correlate import new_operation_id\n"
        "new_operation_id()\n"
        "read, write = os.pipe()\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    os.write(write, new_operation_id().encode())\n"
        "    os._exit(0)\n"
        "os.waitpid(pid, 0)\n"
        "child = os.read(read, 64).decode()\n"
        "print(child != new_operation_id() and len(child) == 32)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "True"
