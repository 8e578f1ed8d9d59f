"""Testing tools: a real UCWA 2.0 simulator (aiohttp.web) with fault injection.

Use it to test code built on ucwa_async (or any UCWA client) without a Skype for
Business server::

    from ucwa_async.testing import SimulatorConfig, UcwaSimulator

    async with UcwaSimulator(config=SimulatorConfig(completion_delay=0.1), seed=0) as sim:
        ...  # point the client at sim.discovery_url with sim.username / sim.password

- :class:`UcwaSimulator` serves the URL layout documented in
  :mod:`ucwa_async.testing._urls` (discovery, the MsRtcOAuth challenge, the password
  grant, applications, the event channel, conversation logs, continueMessaging /
  continuePhoneAudio, invitations), in JSON or XML as each request asks.
- ``sim.faults`` (:class:`FaultInjector`) arms faults; ``sim.counters``
  (:class:`Counters`) and ``sim.request_log`` (:class:`RequestRecord`) show what
  happened.
- conversations: a directory of :class:`Person` with a :class:`Behaviour` each
  (echo, scripted, decline, never answer, silent, leave after N); ``sim.incoming_message``,
  ``sim.say``, ``sim.leave``, ``sim.withdraw``... inject the remote side.
- :class:`SimulatorConfig` holds every switch; :class:`Outcome` / :class:`Reason`
  describe how invitations end (``SimulatorReason`` is the same ``Reason``, named apart
  from ``ucwa_async.Reason``, the one the client parses).
- pytest: the ``ucwa_simulator`` fixture (see :mod:`ucwa_async.testing.plugin`).
- standalone: ``python -m ucwa_async.testing --port 0``.

The simulator shares no code with the client: its XML writer and request reader
are its own, so the client's codec is tested against an independent encoder.
"""

from ucwa_async.testing._config import (
    CANCELLED,
    DECLINED,
    ConflictRule,
    HrefStyle,
    InvitationRequest,
    Outcome,
    OutcomeRule,
    Reason,
    SimulatorConfig,
    SimulatorReason,
)
from ucwa_async.testing._faults import (
    ALL_FAULT_KINDS,
    HOSTILE_FAULT_KINDS,
    RANDOM_DEFAULT_KINDS,
    FaultInjector,
    FaultKind,
)
from ucwa_async.testing._people import Behaviour, Person
from ucwa_async.testing._records import Counters, RequestRecord
from ucwa_async.testing._simulator import UcwaSimulator

__all__ = [
    "ALL_FAULT_KINDS",
    "CANCELLED",
    "DECLINED",
    "HOSTILE_FAULT_KINDS",
    "RANDOM_DEFAULT_KINDS",
    "Behaviour",
    "ConflictRule",
    "Counters",
    "FaultInjector",
    "FaultKind",
    "HrefStyle",
    "InvitationRequest",
    "Outcome",
    "OutcomeRule",
    "Person",
    "Reason",
    "RequestRecord",
    "SimulatorConfig",
    "SimulatorReason",
    "UcwaSimulator",
]
