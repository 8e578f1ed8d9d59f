"""``mypy --strict`` on a user-style bot, against the package the tests import (the
installed one), from outside the source tree: the public types are precise enough for a
strictly typed user (issue 14)."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import ucwa_async

HERE = Path(__file__).parent


def _mypy(script: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("MYPYPATH", None)
    package_root = Path(ucwa_async.__file__).resolve().parent.parent
    installed = {Path(p).resolve() for p in [*site.getsitepackages(), site.getusersitepackages()]}
    if package_root not in installed:
        # An editable install (an import hook mypy cannot follow) or a source checkout.
        env["MYPYPATH"] = str(package_root)
    command = [sys.executable, "-m", "mypy", "--strict", "--no-error-summary"]
    command += ["--config-file", os.devnull, "--cache-dir", str(cwd / ".mypy_cache")]
    return subprocess.run(
        [*command, str(script)], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_user_bot_passes_mypy_strict(tmp_path: Path) -> None:
    script = tmp_path / "user_bot.py"
    shutil.copy(HERE / "user_bot.py", script)
    completed = _mypy(script, tmp_path)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    # It did check against the real types: a misuse is caught.
    wrong = tmp_path / "wrong.py"
    wrong.write_text(
        "import ucwa_async\n"
        "def f(log: ucwa_async.ConversationLog, inv: ucwa_async.Invitation[int]) -> None:\n"
        "    size: int = log.href\n"
        "    flag: str = inv.cancel()\n"
        "async def g(session: ucwa_async.Session) -> None:\n"
        "    async for item in session.events():\n"
        "        count: int = item\n"
    )
    completed = _mypy(wrong, tmp_path)
    assert completed.returncode == 1
    assert 'expression has type "str", variable has type "int"' in completed.stdout
    assert 'expression has type "bool", variable has type "str"' in completed.stdout
    # An events() item was Any: nothing a user did with it was checked.
    assert 'expression has type "Event | ChannelConnected | ChannelReconnecting' in completed.stdout
