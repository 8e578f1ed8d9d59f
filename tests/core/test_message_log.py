"""MessageLog: exactly once, server order behind placeholders, bounded with counted drops."""

from __future__ import annotations

import pytest

from ucwa_async._core.message_log import MessageLog


def test_exactly_once_and_in_order() -> None:
    log: MessageLog[str] = MessageLog()
    reader = log.open_reader()
    assert log.add("a", "A")
    assert log.add("b", "B")
    assert not log.add("a", "A again")
    assert log.seen("a")
    assert not log.seen("z")
    assert log.read(reader) == ["A", "B"]
    assert log.read(reader) == []
    assert len(log) == 2
    assert log.next_seq == 2


def test_placeholder_holds_later_messages_until_filled() -> None:
    log: MessageLog[str] = MessageLog()
    reader = log.open_reader()
    assert log.reserve("a")
    assert not log.reserve("a")
    log.add("b", "B")
    assert log.read(reader) == []
    assert log.add("a", "A")
    assert not log.add("a", "A twice")
    assert log.read(reader) == ["A", "B"]


def test_given_up_and_ignored_placeholders_release_the_rest() -> None:
    log: MessageLog[str] = MessageLog()
    reader = log.open_reader()
    log.reserve("a")
    log.reserve("x")
    log.add("b", "B")
    log.give_up("a")
    log.give_up("a")  # twice: nothing more
    assert log.dropped == 1
    assert log.read(reader) == []
    log.ignore("x")  # an outgoing message: not counted
    assert log.dropped == 1
    assert log.read(reader) == ["B"]
    log.ignore("y")
    assert not log.add("y", "Y")  # remembered as seen


def test_too_many_placeholders_gives_up_the_oldest() -> None:
    log: MessageLog[str] = MessageLog(max_pending=2)
    reader = log.open_reader()
    log.reserve("a")
    log.add("b", "B")
    log.reserve("c")
    log.reserve("d")  # the third placeholder: "a" is given up, "b" released
    assert log.dropped == 1
    assert log.read(reader) == ["B"]


def test_several_readers_each_see_everything() -> None:
    log: MessageLog[str] = MessageLog()
    first, second = log.open_reader(), log.open_reader()
    log.add("a", "A")
    assert log.read(first) == ["A"]
    log.add("b", "B")
    assert log.read(second) == ["A", "B"]
    assert log.read(first) == ["B"]


def test_a_new_reader_starts_where_a_closed_one_stopped() -> None:
    log: MessageLog[str] = MessageLog()
    log.add("a", "A")  # before any reader: buffered
    first = log.open_reader()
    assert log.read(first) == ["A"]
    log.close_reader(first)
    log.close_reader(first)
    log.add("b", "B")
    assert log.read(log.open_reader()) == ["B"]


def test_overflow_drops_the_oldest_and_counts_it() -> None:
    log: MessageLog[str] = MessageLog(max_messages=2)
    reader = log.open_reader()
    for key in "abc":
        log.add(key, key.upper())
    assert log.dropped == 1
    assert log.read(reader) == ["B", "C"]
    assert reader.missed == 1
    log.add("d", "D")  # evicts B, which the reader had read: not a drop
    assert log.dropped == 1
    idle: MessageLog[str] = MessageLog(max_messages=1)
    idle.add("a", "A")
    idle.add("b", "B")  # nobody open: the next reader would miss it
    assert idle.dropped == 1


def test_seen_memory_is_bounded() -> None:
    log: MessageLog[str] = MessageLog(seen_limit=2)
    for key in "abc":
        log.add(key, key)
    assert not log.seen("a")
    assert log.seen("c")


def test_bad_sizes() -> None:
    with pytest.raises(ValueError, match="max_messages"):
        MessageLog(max_messages=0)


def test_holding_while_a_placeholder_waits() -> None:
    log: MessageLog[str] = MessageLog()
    assert not log.holding
    log.reserve("a")
    log.add("b", "B")
    assert log.holding
    log.add("a", "A")
    assert not log.holding
