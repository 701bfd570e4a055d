"""The asyncio driver over a real endpoint: a role call that runs long (a training update)
moves the timers it set by its duration and tells the role it stalled; a short call's
timers stay where the role put them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Hashable

import pytest

from protocols import messages as m
from protocols.driver import STALL_S, Driver
from protocols.meter import Meter
from protocols.role import Outbox, Role
from protocols.transport import Endpoint

WAIT_S = 0.3
"""The timeout the role sets after each message."""


class Busy(Role):
    """Works ``work_s`` on a message, then waits ``WAIT_S`` for an answer that never comes."""

    def __init__(self, work_s: float) -> None:
        self.name = "controller"
        self.node_names = frozenset({"node-0"})
        self.work_s = work_s
        self.arrived = self.fired = 0.0
        self.stalls: list[float] = []

    def on_message(self, msg: m.Message, now: float, out: Outbox) -> None:
        self.arrived = now
        time.sleep(self.work_s)  # the role's own work: nothing is read meanwhile
        out.timer("answer", now + WAIT_S)

    def on_timer(self, key: Hashable, now: float, out: Outbox) -> None:
        self.fired = time.monotonic()
        self.done = True

    def stalled(self, until: float) -> None:
        self.stalls.append(until)


async def drive(role: Busy) -> None:
    with Endpoint("controller", "tcp://127.0.0.1:0", Meter()) as ep, \
            Endpoint("node-0", "tcp://127.0.0.1:0", Meter()) as peer:
        peer.connect("controller", str(ep.address))
        task = asyncio.ensure_future(Driver(role, ep).run())
        await peer.send("controller", m.Heartbeat(**peer.header(slot=-1)))
        await asyncio.wait_for(task, 30.0)


@pytest.mark.parametrize("work_s", [0.0, 2 * STALL_S])
def test_a_long_call_moves_its_timers_by_its_duration(work_s: float) -> None:
    role = Busy(work_s)
    asyncio.run(drive(role))
    waited = role.fired - role.arrived
    if work_s > STALL_S:
        # the wait starts when the work ends, not when the message came
        assert waited >= work_s + WAIT_S
        assert len(role.stalls) == 1 and role.stalls[0] >= role.arrived + work_s
    else:
        assert WAIT_S <= waited < WAIT_S + STALL_S
        assert role.stalls == []
