"""The code in docs/ runs: the quickstart script and the fixture example of testing.md."""

from __future__ import annotations

import asyncio
import contextlib
import re
import types
from pathlib import Path

import pytest

from ucwa_async.testing import Behaviour, Person, UcwaSimulator

DOCS = Path(__file__).resolve().parents[2] / "docs"


def python_blocks(page: str) -> list[str]:
    text = (DOCS / page).read_text(encoding="utf-8")
    return re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)


def as_module(source: str, name: str) -> types.ModuleType:
    module = types.ModuleType(name)  # imported, not run: __main__ guards stay shut
    exec(compile(source, str(DOCS / name), "exec"), module.__dict__)
    return module


def test_every_page_exists() -> None:
    pages = {p.name for p in DOCS.glob("*.md")}
    expected = {
        "cli.md",
        "errors.md",
        "events.md",
        "invitations.md",
        "logging.md",
        "conversations.md",
    }
    assert pages >= expected | {"quickstart.md", "testing.md", "architecture.md"}


@pytest.mark.ucwa_simulator(completion_delay=0.05)
async def test_quickstart_script_runs(
    ucwa_simulator: UcwaSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    module = as_module(python_blocks("quickstart.md")[0], "quickstart.md")
    await module.main(
        ucwa_simulator.discovery_url, ucwa_simulator.username, ucwa_simulator.password
    )
    out = capsys.readouterr().out
    assert re.fullmatch(r"connected: http://127\.0\.0\.1:\d+/\S+/invitations/1 Connected\n", out)


async def test_testing_page_fixture_example_passes(ucwa_simulator: UcwaSimulator) -> None:
    module = as_module(python_blocks("testing.md")[0], "testing.md")
    await module.test_my_bot_follows_up(ucwa_simulator)
    assert ucwa_simulator.counters.invitations_created == 1


async def test_conversations_page_echo_bot_answers(ucwa_simulator: UcwaSimulator) -> None:
    sim = ucwa_simulator
    sim.add_person(Person(uri="sip:lenea@contoso.com", name="L", behaviour=Behaviour.silent()))
    module = as_module(python_blocks("conversations.md")[0], "conversations.md")
    bot = asyncio.create_task(module.echo_bot(sim.discovery_url, sim.username, sim.password))
    try:
        for _ in range(200):  # bounded: until the bot's session is available for IMs
            try:
                await sim.incoming_message("sip:lenea@contoso.com", "hello bot")
                break
            except LookupError:
                await asyncio.sleep(0.05)
        for _ in range(200):  # bounded: until the bot answered
            urls = sim.conversation_urls()
            if urls and sim.messages_from_client(urls[0]):
                break
            await asyncio.sleep(0.05)
        assert sim.messages_from_client(urls[0]) == ["you said: hello bot"]
    finally:
        bot.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await bot
