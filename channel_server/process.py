"""The channel-server process: the air's role (:mod:`channel_server.roles.air`) driven over
ZeroMQ. No maths and no protocol logic here.

scipy is imported here, before the event loop: the air computes J0 (its fading's
correlation, :func:`channel_server.config.bessel_j0`) when the run's Start comes, and
importing scipy then, a quarter of a second or more on a loaded machine, would keep the
process from answering heartbeats."""

from __future__ import annotations

import scipy.special  # noqa: F401 - see the module's docstring

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
