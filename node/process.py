"""A node process (a base station, a vehicle, ...): the node role
(:mod:`node.roles.node`) driven over ZeroMQ. No decisions and no protocol logic here."""

from __future__ import annotations

from node.roles.node import NodeRole
from protocols.driver import Driver
from protocols.keys import KeyRing
from protocols.meter import Meter
from protocols.names import CONTROLLER
from protocols.transport import Endpoint


async def serve(role: str, index: int, controller: str, bind: str, advertise: str | None,
                keys: KeyRing | None) -> int:
    """Run node ``<role>-<index>`` until the controller stops it; the exit code (``keys``:
    the run's CURVE keys, None for an insecure run)."""
    node = NodeRole(role, index)
    endpoint = Endpoint(node.name, bind, Meter(), keys=keys)
    try:
        return await Driver(node, endpoint, advertise, {CONTROLLER: controller}).run()
    finally:
        endpoint.close(linger_s=2.0)
