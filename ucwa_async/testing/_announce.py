"""What both simulator runners (``python -m ucwa_async.testing`` and ``ucwa-async
simulator``) print: the same ``key: value`` lines, so one parser reads either."""

from __future__ import annotations

from ucwa_async.testing._simulator import UcwaSimulator

__all__ = ["connection_lines", "stopped_line"]


def connection_lines(sim: UcwaSimulator) -> list[str]:
    """``discovery_url``, ``username`` and ``password``, one ``key: value`` line each."""
    return [
        f"discovery_url: {sim.discovery_url}",
        f"username: {sim.username}",
        f"password: {sim.password}",
    ]


def stopped_line(sim: UcwaSimulator) -> str:
    counters = sim.counters
    return (
        f"simulator stopped ({counters.requests} requests, "
        f"{counters.invitations_created} invitations)"
    )
