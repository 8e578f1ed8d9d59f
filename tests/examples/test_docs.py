"""The docs run as written: every Python block of README.md and docs/*.md (see _doc_blocks).

- ``session`` blocks run against the embedded simulator with a real open session;
- ``script`` blocks (the quickstarts) have their ``main`` run against it;
- ``file`` blocks make a scratch project (conftest.py + test files, as a user would write
  them), run by a child pytest with pytest-asyncio's default (strict) mode;
- ``session SETUP`` blocks also get an IM that Lene sent: waiting in the inbox, as an
  ``invite`` or as an accepted ``conversation``; the test checks what the block shows;
- ``bot`` blocks serve IMs as a task: the test sends one, waits for the echo, and stops it.

There is no compile-only mode: every block runs.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import logging
import os
import re
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

import ucwa_async
from ucwa_async.testing import Behaviour, Person, SimulatorConfig, UcwaSimulator

from ._doc_blocks import MODES, ROOT, SESSION_SETUPS, DocBlock, all_blocks

BLOCKS = all_blocks()


def of_mode(mode: str) -> list[Any]:
    return [pytest.param(b, id=b.id) for b in BLOCKS if b.mode == mode]


def compiled(block: DocBlock) -> types.CodeType:
    # Leading newlines: a traceback points at the block's line in the page.
    source = "\n" * block.line + block.code
    code: types.CodeType = compile(
        source, str(ROOT / block.page), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    )
    return code


def test_every_page_exists() -> None:
    pages = {p.name for p in (ROOT / "docs").glob("*.md")}
    expected = {"cli.md", "errors.md", "events.md", "invitations.md", "logging.md"}
    expected |= {"conversations.md"}
    assert pages >= expected | {"quickstart.md", "testing.md", "architecture.md"}


def test_every_block_has_a_known_mode() -> None:
    assert len(BLOCKS) >= 12
    unknown = [b.id for b in BLOCKS if not _known(b)]
    assert unknown == []
    # Every fence opened as python was found (a stray mark would hide a block).
    fences = sum(
        page.read_text(encoding="utf-8").count("\n```python\n")
        for page in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]
    )
    assert fences == len(BLOCKS)


def _known(block: DocBlock) -> bool:
    if block.mode == "file":
        return block.arg is not None
    if block.mode == "session":
        return block.arg is None or block.arg in SESSION_SETUPS
    return block.mode in MODES and (block.arg is None or block.mode == "bot")


def test_the_readme_test_command_is_the_one_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^# set-up \+ the test suite.*\n(.+)\n", readme, re.M)
    assert match is not None
    command = match[1]
    assert "pytest" in command
    assert "'.[test]'" in command
    assert command in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    demo = re.search(r"^# set-up \+ the main job.*\n(.+)\n", readme, re.M)
    assert demo is not None
    assert "'.[cli]'" in demo[1]
    assert demo[1].endswith("ucwa-async demo")


def test_every_block_compiles() -> None:
    """All of them, before any runs: a syntax error names its page and line."""
    for block in BLOCKS:
        compiled(block)


@pytest.mark.parametrize("block", of_mode("script"))
@pytest.mark.ucwa_simulator(completion_delay=0.05)
async def test_script_block_runs(
    block: DocBlock, ucwa_simulator: UcwaSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    module = types.ModuleType(block.id)  # imported, not run: __main__ guards stay shut
    exec(compiled(block), module.__dict__)
    sim = ucwa_simulator
    await module.main(sim.discovery_url, sim.username, sim.password)
    await _no_client_task_left()
    out = capsys.readouterr().out
    assert re.match(r"connected: \S+/invitations/\d+ Connected\n", out)
    for failure in ("not connected", "did not connect", "no outcome", "declined"):
        assert failure not in out


@pytest.fixture
def logging_restored() -> Any:
    """A block may configure logging (docs/logging.md): undo it after the test."""
    root, package = logging.getLogger(), logging.getLogger("ucwa_async")
    saved = (root.level, list(root.handlers), package.level)
    yield
    root.setLevel(saved[0])
    root.handlers[:] = saved[1]
    package.setLevel(saved[2])


LENE = "sip:lenea@contoso.com"  # in the simulator's directory; echoes by default


@pytest.mark.parametrize("block", of_mode("session"))
@pytest.mark.ucwa_simulator(completion_delay=0.05)
@pytest.mark.usefixtures("logging_restored")
async def test_session_block_runs(
    block: DocBlock, ucwa_simulator: UcwaSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    sim = ucwa_simulator
    async with ucwa_async.Session(
        sim.discovery_url,
        auth=ucwa_async.PasswordAuth(sim.username, sim.password),
        invitation_timeout=10.0,
    ) as session:
        logs = await session.conversation_logs()
        namespace: dict[str, Any] = {
            "__name__": block.id,
            "asyncio": asyncio,
            "logging": logging,
            "pytest": pytest,
            "ucwa_async": ucwa_async,
            "SimulatorConfig": SimulatorConfig,
            "UcwaSimulator": UcwaSimulator,
            "log": logging.getLogger("docs"),
            "sim": sim,
            "discovery_url": sim.discovery_url,
            "user": sim.username,
            "password": sim.password,
            "session": session,
            "invitation": await session.continue_messaging(logs[0], message="from the docs"),
        }
        if block.arg is None:
            await _run_reading_the_event_stream(block, namespace, session, logs[1])
        else:
            await _run_with_an_incoming_im(block, namespace, session, sim, capsys)
    await _no_client_task_left()


async def _run_reading_the_event_stream(
    block: DocBlock, namespace: dict[str, Any], session: ucwa_async.Session, other: Any
) -> None:
    run = asyncio.ensure_future(_execute(compiled(block), namespace))
    done, _ = await asyncio.wait({run}, timeout=0.2)
    if not done:
        # A block that reads the event stream: give it events, then end the stream
        # the documented way (the session closes).
        await (await session.continue_messaging(other, message="more from the docs"))
        await asyncio.sleep(0.1)
        await session.aclose()
    await asyncio.wait_for(run, timeout=10)


async def _run_with_an_incoming_im(
    block: DocBlock,
    namespace: dict[str, Any],
    session: ucwa_async.Session,
    sim: UcwaSimulator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The SETUPs of ``session`` (see _doc_blocks): Lene's IM, then the block."""
    assert block.arg in SESSION_SETUPS, block.arg
    text = "deploy web"
    invitation_url = await _send_im(sim, text)
    if block.arg == "incoming":
        run = asyncio.ensure_future(_execute(compiled(block), namespace))
        # The block loops over session.incoming(): once it holds the IM, the session
        # closes (the documented end of that loop).
        await _until(lambda: "invite" in namespace, run)
        await session.aclose()
        await asyncio.wait_for(run, timeout=10)
        invite = namespace["invite"]  # what the block's comments say it is
        assert invite.kind == "messaging"
        assert invite.href == invitation_url
        assert invite.sender == ucwa_async.Participant(uri=LENE, name="Lene Aaling")
        assert invite.message == text
        return
    async with session.incoming() as invitations:
        invite = await asyncio.wait_for(anext(invitations), timeout=10)
    namespace["invite"] = invite
    if block.arg == "conversation":
        namespace["conversation"] = await invite.accept()
    await asyncio.wait_for(_execute(compiled(block), namespace), timeout=10)
    conversation: Any = namespace.get("conversation")  # the block may have made one
    if block.arg == "invite":
        # Answered once, as the block did: accepted (Connected on both sides) or declined.
        stats = session.stats
        if conversation is None:
            assert (stats.incoming_accepted, stats.incoming_declined) == (0, 1)
            declines = [r for r in sim.request_log if r.path.endswith("/decline")]
            assert [(r.method, r.status) for r in declines] == [("POST", 204)]
        else:
            assert (stats.incoming_accepted, stats.incoming_declined) == (1, 0)
            assert conversation.state == "Connected"
            assert sim.conversation_state(conversation.href) == "Connected"
    else:
        # What the block printed are Lene's echoes of what it sent.
        sent = sim.messages_from_client(conversation.href)
        printed = capsys.readouterr().out.splitlines()
        assert sent
        assert printed
        assert set(printed) <= {f"echo: {message}" for message in sent}


async def _send_im(sim: UcwaSimulator, text: str, *, call_first: bool = False) -> str:
    """Lene sends ``text`` to the newest session, once it is available for IMs
    (``call_first``: she phones it first, if it is available for phone calls too)."""
    called = False
    for _ in range(200):  # bounded: about 10 s
        try:
            if call_first and not called:
                with contextlib.suppress(LookupError):
                    await sim.incoming_call(LENE)
                    called = True
            return await sim.incoming_message(LENE, text)
        except LookupError:  # its application is not available for Messaging yet
            await asyncio.sleep(0.05)
    raise AssertionError("the session never became available for IMs")


async def _until(condition: Any, task: asyncio.Future[Any], seconds: float = 10.0) -> None:
    """Wait until ``condition()`` holds (bounded); a ``task`` that failed first says why."""
    async with asyncio.timeout(seconds):
        while not condition():
            if task.done():
                task.result()  # its exception, if any
                raise AssertionError("the block ended before the condition held")
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("block", of_mode("bot"))
async def test_bot_block_answers_an_im(block: DocBlock, ucwa_simulator: UcwaSimulator) -> None:
    sim = ucwa_simulator
    # A silent Lene: an echoing one and an echoing bot would talk forever.
    sim.add_person(Person(uri=LENE, name="Lene Aaling", behaviour=Behaviour.silent()))
    auth = ucwa_async.PasswordAuth(sim.username, sim.password)
    namespace: dict[str, Any] = {"__name__": block.id, "url": sim.discovery_url, "auth": auth}
    namespace["ucwa_async"] = ucwa_async
    code = compiled(block)
    if block.arg is None:
        bot = asyncio.ensure_future(_execute(code, namespace))
    else:
        module = types.ModuleType(block.id)  # imported, not run: __main__ guards stay shut
        exec(code, module.__dict__)
        serve = getattr(module, block.arg)
        bot = asyncio.ensure_future(serve(sim.discovery_url, sim.username, sim.password))
    try:
        # A phone call ahead of the IM (if the bot is available for calls): accept()
        # cannot take it (UnsupportedModalityError), the bot must go on to the IM.
        await _send_im(sim, "hello bot", call_first=True)
        urls = sim.conversation_urls
        await _until(lambda: bool(urls() and sim.messages_from_client(urls()[-1])), bot)
        url = urls()[-1]  # the IM's (a phone call's comes before it)
        [reply] = sim.messages_from_client(url)
        assert reply.endswith("hello bot")
        if ".leave()" in block.code:  # the bot leaves once it answered
            await _until(lambda: sim.conversation_state(url) == "Disconnected", bot)
        else:  # it answers each message of the conversation
            await sim.say(url, LENE, "and again")
            await _until(lambda: len(sim.messages_from_client(url)) == 2, bot)
            assert sim.messages_from_client(url)[1].endswith("and again")
    finally:
        bot.cancel()
        await asyncio.gather(bot, return_exceptions=True)
    assert bot.cancelled()  # it served until stopped, and closed its session on the way out
    await _no_client_task_left()


async def _no_client_task_left() -> None:
    """Every task of the client is gone (bounded wait: a closed connection leaves the
    simulator's aiohttp handler a tick or two to wind down; those are not the client's)."""
    current = asyncio.current_task()

    def client_tasks() -> list[asyncio.Task[Any]]:
        alive = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        return [t for t in alive if "aiohttp/web_" not in repr(t)]

    for _ in range(100):
        if not client_tasks():
            return
        await asyncio.sleep(0.01)
    assert client_tasks() == []


async def _execute(code: types.CodeType, namespace: dict[str, Any]) -> None:
    result = eval(code, namespace)  # top-level await: a coroutine to await
    if asyncio.iscoroutine(result):
        await result


def _project_files(page: str) -> dict[str, str]:
    files: dict[str, str] = {}
    for block in BLOCKS:
        if block.page == page and block.mode == "file":
            assert block.arg is not None
            files[block.arg] = files.get(block.arg, "") + ("\n\n" if block.arg in files else "")
            files[block.arg] += block.code
    return files


@pytest.mark.parametrize("page", sorted({b.page for b in BLOCKS if b.mode == "file"}))
def test_scratch_project_of_the_page_passes_in_strict_mode(page: str, tmp_path: Path) -> None:
    files = _project_files(page)
    assert "conftest.py" in files
    for name, code in files.items():
        (tmp_path / name).write_text(code, encoding="utf-8")
    # An empty config: the project's root (the scratch dir may sit inside another project,
    # e.g. under nox's TMPDIR in this repository) and pytest-asyncio's defaults.
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    tests = sum(len(re.findall(r"^(?:async )?def test_", c, re.M)) for c in files.values())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_CORE"))}
    # The ucwa_async under test (source tree or installed wheel), not another install.
    package_home = str(Path(ucwa_async.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_home, env.get("PYTHONPATH")]))
    proc = subprocess.run(
        # -p no:ucwa_async: an older install may still auto-load the plugin (0.1).
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:ucwa_async"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    # pytest-asyncio's header line: "asyncio: mode=Mode.STRICT, ..." (or "mode=strict")
    assert re.search(r"asyncio: mode=(Mode\.)?strict", proc.stdout, re.I), output[-4000:]
    assert re.search(rf"\b{tests} passed", proc.stdout), output[-4000:]
