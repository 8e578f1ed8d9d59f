"""What the docs list is what the code has: the error trees of README.md and docs/errors.md,
the README's configuration table (every option, with its default), and the lists of
docs/conversations.md and docs/events.md (end reasons, channel signals and states, errors)."""

from __future__ import annotations

import ast
import inspect
import pathlib
import re
import typing

import attrs
import pytest

import ucwa_async

from ._doc_blocks import ROOT

PAGES = ["README.md", "docs/errors.md"]
_NAME = re.compile(r"\b([A-Z]\w*Error)\b")


def public_errors() -> dict[str, str]:
    """Each public error class, by name, with the name of its nearest UcwaError base."""
    tree: dict[str, str] = {}
    for name in ucwa_async.__all__:
        cls = getattr(ucwa_async, name)
        if isinstance(cls, type) and issubclass(cls, ucwa_async.UcwaError):
            if cls is ucwa_async.UcwaError:
                continue
            parent = next(b for b in cls.__bases__ if issubclass(b, ucwa_async.UcwaError))
            tree[name] = parent.__name__
    return tree


def documented_tree(page: str) -> dict[str, str]:
    """The first ``UcwaError`` tree block of ``page``, as child -> parent.

    A line is ``├── Name  description``, indented 4 columns per level; ``A ─ B ─ C`` is a
    chain (C under B under A), ``A ─ B, C`` two children of A."""
    text = (ROOT / page).read_text(encoding="utf-8")
    block = re.search(r"```\n(UcwaError\n.*?)```", text, re.S)
    assert block is not None, f"{page}: no UcwaError tree"
    tree: dict[str, str] = {}
    by_depth = {0: "UcwaError"}
    for line in block.group(1).splitlines()[1:]:
        match = re.match(r"([│ ]*)[├└]── (.*)", line)
        assert match is not None, f"{page}: {line!r}"
        depth = len(match.group(1)) // 4 + 1
        structure = re.split(r" {2,}", match.group(2).strip())[0]
        parent = by_depth[depth - 1]
        for index, segment in enumerate(structure.split(" ─ ")):
            names = _NAME.findall(segment)
            assert names, f"{page}: {line!r}"
            for name in names:
                assert name not in tree, f"{page}: {name} twice"
                tree[name] = parent
            if index == 0:
                by_depth[depth] = names[-1]
            parent = names[-1]
    return tree


@pytest.mark.parametrize("page", PAGES)
def test_the_error_tree_is_the_code_s(page: str) -> None:
    assert documented_tree(page) == public_errors()


def _table_rows() -> dict[str, str]:
    """README's configuration table: option -> default, as written."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`"):
            options = re.findall(r"`([\w.]+)`", cells[0])
            values = cells[1].split(" / ") if len(options) > 1 else [cells[1]]
            assert len(values) == len(options), line
            rows.update(zip(options, values, strict=True))
    return rows


def test_the_configuration_table_lists_every_option_with_its_default() -> None:
    rows = _table_rows()
    expected: dict[str, object] = {}
    for group in (ucwa_async.Timeouts, ucwa_async.Retries, ucwa_async.Limits):
        for field in attrs.fields(group):
            default = field.default
            if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
                default = default.factory()
            expected[f"{group.__name__}.{field.name}"] = default
    missing = sorted(set(expected) - set(rows))
    assert missing == []
    for option, default in expected.items():
        written = rows[option]
        if isinstance(default, ucwa_async.Backoff):
            assert f"base={default.base:g}" in written
            assert f"cap={default.cap:g}" in written
        elif default is None:
            assert "None" in written, option
        elif option == "Limits.max_body_size":
            assert written == f"{default // 2**20} MiB"  # type: ignore[operator]
        else:
            number = re.sub(r"[^\d.]", "", written)
            assert float(number) == default, (option, written)
    # The Session keywords that are not a group's field are in the table too.
    for keyword in ("wire_format", "invitation_timeout", "http_session", "allow_insecure_http"):
        assert keyword in rows
    for keyword in ("user_agent", "culture", "available_for"):
        assert keyword in rows


def test_the_quickstart_options_are_the_groups_fields_with_their_defaults() -> None:
    # The quickstart's table listed the 0.1 shorthands (request_timeout=, ...) as the
    # options, after they had become fields of Timeouts / Retries / Limits.
    text = (ROOT / "docs/quickstart.md").read_text(encoding="utf-8")
    section = text.split("## Session options", 1)[1].split("\n## ", 1)[0]
    groups = {g.__name__: g for g in (ucwa_async.Timeouts, ucwa_async.Retries, ucwa_async.Limits)}
    checked = 0
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        match = re.fullmatch(r"`(\w+)\((\w+)=\.\.\.\)`", cells[0])
        if match is None:  # a Session keyword
            assert cells[0].strip("`") in ("wire_format", "invitation_timeout", "available_for",
                                           "http_session"), line  # fmt: skip
            continue
        field = attrs.fields_dict(groups[match[1]])[match[2]]
        written = cells[1]
        if match[2] == "max_body_size":
            assert written == f"{field.default // 2**20} MiB"
        else:
            assert float(re.sub(r"[^\d.]", "", written)) == field.default, line
        checked += 1
    assert checked >= 8


def _section(page: str, heading: str) -> str:
    text = (ROOT / page).read_text(encoding="utf-8")
    return text.split(heading, 1)[1].split("\n## ", 1)[0]


def test_every_conversation_end_reason_is_named_where_the_docs_list_them() -> None:
    # CHANNEL_FAILED came after the list of docs/conversations.md was written.
    listed = _section("docs/conversations.md", "### When it ends")
    values = re.search(r"`wait_ended\(\)` returns a `ConversationEndReason` \(([^)]*)\)", listed)
    assert values is not None
    written = re.findall(r"`(\w+)`", values.group(1))
    assert sorted(written) == sorted(member.value for member in ucwa_async.ConversationEndReason)


def test_the_events_page_lists_every_channel_signal() -> None:
    table = _section("docs/events.md", "## What it yields")
    rows = re.findall(r"^\| `(\w+)\(", table, re.M)
    signals = typing.get_args(ucwa_async.ChannelSignal)
    assert sorted(rows) == sorted(cls.__name__ for cls in signals)


def test_the_channel_states_on_the_events_page_are_the_code_s() -> None:
    page = _section("docs/events.md", "## What it yields")
    states = re.search(r"`session\.channel_state` is a `ChannelStatus`: ([^(]*)\(", page)
    assert states is not None
    written = re.findall(r"`(\w+)`", states.group(1))
    assert written == [member.name for member in ucwa_async.ChannelStatus]


def test_the_conversation_errors_table_names_public_errors_only() -> None:
    table = _section("docs/conversations.md", "## Errors")
    rows = re.findall(r"^\| `(\w+)` \|", table, re.M)
    assert rows, "no errors table"
    for name in rows:
        assert issubclass(getattr(ucwa_async, name), ucwa_async.UcwaError), name
    # What a conversation's calls raise when the event channel is down for good, and
    # when send()'s answer is lost.
    assert {"ChannelFailedError", "TransportError"} <= set(rows)


def test_every_session_stats_counter_says_what_it_counts() -> None:
    # The counters have no docs page of their own: each field's docstring is its doc
    # (an exporter reads them there), so none may be left without one.
    # The installed module's file: the suite also runs against the wheel, without the
    # source tree.
    source = pathlib.Path(inspect.getfile(ucwa_async._session)).read_text(encoding="utf-8")
    tree = ast.parse(source)
    stats = next(
        node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "SessionStats"
    )
    documented: list[str] = []
    for field, after in zip(stats.body, [*stats.body[1:], None], strict=True):
        if isinstance(field, ast.AnnAssign) and isinstance(field.target, ast.Name):
            has_doc = (
                isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            )
            if has_doc:
                documented.append(field.target.id)
    names = [field.name for field in attrs.fields(ucwa_async.SessionStats)]
    assert documented == names
