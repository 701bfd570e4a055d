"""The meter's per-message wire size, and what CURVE adds to it, checked against the bytes a
TCP relay between two endpoints actually carries (greetings and handshakes cancel out:
two batches of messages are compared)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from protocols.codec import encode
from protocols.keys import load_keys, write_keys
from protocols.messages import PowerForward
from protocols.meter import Meter, curve_extra, wire_size
from protocols.transport import Endpoint


class Relay:
    """A TCP relay on loopback that counts the bytes it forwards from client to server."""

    def __init__(self, target_port: int) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.target = target_port
        self.upstream = 0
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        client, _ = self.listener.accept()
        server = socket.create_connection(("127.0.0.1", self.target))

        def pipe(src: socket.socket, dst: socket.socket, count: bool) -> None:
            while data := src.recv(65536):
                if count:
                    self.upstream += len(data)
                dst.sendall(data)

        threading.Thread(target=pipe, args=(server, client, False), daemon=True).start()
        pipe(client, server, True)


@pytest.mark.parametrize("curve", [False, True])
@pytest.mark.parametrize("floats", [4, 40])  # frames below and above 255 bytes
def test_bytes_per_message_on_the_wire(tmp_path: Path, curve: bool, floats: int) -> None:
    keys = None
    if curve:
        write_keys(tmp_path, ["a", "b"])
        keys = {n: load_keys(tmp_path, n) for n in ("a", "b")}
    inbox = Endpoint("b", "tcp://127.0.0.1:0", Meter(), keys=keys["b"] if keys else None)
    port = int(str(inbox.address).rsplit(":", 1)[1])
    relay = Relay(port)
    sender = Endpoint("a", None, Meter(), keys=keys["a"] if keys else None)
    sender.connect("b", f"tcp://127.0.0.1:{relay.port}")

    def msg(seq: int) -> PowerForward:  # seq and sent_ns of fixed width: one frame size
        return PowerForward([0], np.zeros((1, floats)), sender="a", seq=1000 + seq, slot=7,
                            sent_ns=1_700_000_000_000_000_000, chain_latency_s=0.0)

    async def batch(n: int) -> int:
        before = relay.upstream
        for i in range(n):
            await sender.send("b", msg(i))
        for _ in range(n):
            await inbox.recv(10.0)
        time.sleep(0.05)
        return relay.upstream - before

    async def main() -> tuple[int, int]:
        await batch(5)  # greeting and handshake out of the way
        return await batch(100), await batch(300)

    small, large = asyncio.run(main())
    frame = len(encode(msg(0)))
    per_message = (large - small) / 200
    expected = wire_size(frame) + (curve_extra(frame) if curve else 0)
    assert per_message == expected, (frame, per_message, expected)
    if curve:
        assert sender.curve_bytes == 405 * curve_extra(frame)
    else:
        assert sender.curve_bytes == 0
    sender.close()
    inbox.close()
