"""The channel-server process: the air's role (:mod:`channel_server.roles.air`) driven over
ZeroMQ. No maths and no protocol logic here."""

from __future__ import annotations

from channel_server.roles.air import ChannelServerRole
from protocols.driver import Driver
from protocols.keys import KeyRing
from protocols.meter import Meter
from protocols.names import CHANNEL_SERVER, CONTROLLER
from protocols.transport import Endpoint


async def serve(controller: str, bind: str, advertise: str | None,
                keys: KeyRing | None) -> int:
    """Run one channel server until the controller stops it; the exit code (``keys``: the
    run's CURVE keys, None for an insecure run)."""
    endpoint = Endpoint(CHANNEL_SERVER, bind, Meter(), keys=keys)
    try:
        return await Driver(ChannelServerRole(), endpoint, advertise,
                            {CONTROLLER: controller}).run()
    finally:
        endpoint.close(linger_s=2.0)
