"""The authenticated telemetry broker (issue 12 point 8), against a real mosquitto.

A run's broker lets in only the run's processes, each logged in as itself and writing only
its own ``rrmbed/+/<role>/<id>/#``, and the read-only user ``watch``: no anonymous access,
no spoofed statuses, no process's connection taken over by a guessable client id, and a
SIGKILLed launcher takes its broker with it; the next launcher removes the temporary folders
(keys, broker config, sockets) that the killed one could not.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
import pytest
from rich.console import Console

from controller.deploy.broker import ensure_broker, watch_login, write_broker_auth
from controller.deploy.tempdirs import owner_of, process_start, remove_orphans
from controller.deploy.watch import main as watch_main
from controller.deploy.watch import watch
from protocols.keys import load_keys, write_keys
from protocols.telemetry import (
    MqttLogin,
    Telemetry,
    TelemetryTiming,
    metrics_topic,
    parse_broker_url,
    status_topic,
    subscription,
)
from tests.helpers import ROOT, S3, Spawn, alive, free_loopback_port, port_open, rrmbed

NAMES = ["controller", "channel-server", "node-0", "node-1"]
RUN = "authrun"
FAST = TelemetryTiming(connect_timeout_s=0.5, backoff_initial_s=0.05, backoff_max_s=0.2)


@dataclass(frozen=True)
class AuthedBroker:
    """A mosquitto started by ``ensure_broker`` with the logins of a key directory."""

    url: str
    """Its ``mqtt://127.0.0.1:port``."""
    keys: Path
    """The key directory (CURVE keys and broker files) of ``NAMES``."""

    def login(self, name: str) -> MqttLogin:
        """Process ``name``'s login, as its telemetry publisher makes it."""
        return MqttLogin(name, load_keys(self.keys, name).mqtt_password)

    @property
    def watch(self) -> MqttLogin:
        return watch_login(self.keys)


@pytest.fixture
def authed(mosquitto_binary: str, tmp_path: Path) -> Iterator[AuthedBroker]:
    keys = tmp_path / "keys"
    write_keys(keys, NAMES)
    auth = write_broker_auth(keys, NAMES)
    url, handle = ensure_broker(None, auth=auth, port=free_loopback_port(), use_amqtt=False)
    assert url is not None and handle.kind == "mosquitto"
    try:
        yield AuthedBroker(url, keys)
    finally:
        handle.stop()


async def until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``predicate`` every 10 ms; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.01)


def client(url: str, login: MqttLogin | None, identifier: str | None = None) -> aiomqtt.Client:
    host, port = parse_broker_url(url)
    return aiomqtt.Client(host, port, identifier=identifier, timeout=5,
                          username=None if login is None else login.username,
                          password=None if login is None else login.password)


@dataclass
class Collector:
    """Every message a subscription received: (topic, payload text, retained)."""

    messages: list[tuple[str, str, bool]] = field(default_factory=list)
    error: aiomqtt.MqttError | None = None
    """Why the subscription ended (the broker went away), if it did."""

    def payloads(self, topic: str) -> list[str]:
        return [p for t, p, _ in self.messages if t == topic]

    def retained(self) -> dict[str, str]:
        return {t: p for t, p, r in self.messages if r}


@contextlib.asynccontextmanager
async def collecting(url: str, login: MqttLogin | None,
                     topic: str = "rrmbed/#") -> AsyncIterator[Collector]:
    """A subscriber for the duration of the block."""
    col = Collector()
    subscribed = asyncio.Event()

    async def run() -> None:
        try:
            async with client(url, login) as c:
                await c.subscribe(topic, qos=1)
                subscribed.set()
                async for m in c.messages:
                    assert isinstance(m.payload, bytes)
                    col.messages.append((str(m.topic), m.payload.decode(), m.retain))
        except aiomqtt.MqttError as exc:
            col.error = exc

    task = asyncio.create_task(run(), name="collector")
    try:
        await asyncio.wait_for(asyncio.shield(subscribed.wait()), 5)
        yield col
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


PUBLISHER = r"""
import asyncio, contextlib, os, signal, sys
from protocols.telemetry import MqttLogin, Telemetry, TelemetryTiming

async def main(url, run, role, ident):
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    login = MqttLogin(os.environ["MQTT_USER"], os.environ["MQTT_PASSWORD"])
    timing = TelemetryTiming(backoff_initial_s=0.05, backoff_max_s=0.2)
    async with Telemetry(url, run, role, ident, period_s=0.05, timing=timing,
                         login=login) as tel:
        print(tel.client_id, flush=True)
        deadline, slot = loop.time() + 30.0, 0  # never outlive a broken test
        while not stop.is_set() and loop.time() < deadline:
            slot += 1
            tel.update(slots_done=slot)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.02)

asyncio.run(main(*sys.argv[1:]))
"""


@contextlib.contextmanager
def publisher(url: str, role: str, ident: str, login: MqttLogin) -> Iterator[tuple[int, str]]:
    """A publisher process logged in as ``login``: (its pid, its MQTT client id)."""
    env = dict(os.environ, MQTT_USER=login.username, MQTT_PASSWORD=login.password)
    proc = subprocess.Popen([sys.executable, "-c", PUBLISHER, url, RUN, role, ident], cwd=ROOT,
                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield proc.pid, proc.stdout.readline().strip()
    finally:
        proc.kill()
        _, err = proc.communicate(timeout=10)
        assert "Traceback" not in err, err


# --------------------------------------------------------------------------- the broker


async def test_anonymous_and_wrong_logins_are_refused(authed: AuthedBroker,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    other = authed.login("node-1").password
    for login in (None, MqttLogin("node-0", "wrong"), MqttLogin("node-0", other),
                  MqttLogin("stranger", other)):
        with pytest.raises(aiomqtt.MqttError):
            async with client(authed.url, login):
                pass
    async with client(authed.url, authed.login("node-0")):  # the control: its own login
        pass
    # a publisher without a login keeps the run going, connects never, says why once
    tel = Telemetry(authed.url, RUN, "node", "0", period_s=0.02, timing=FAST)
    await tel.start()
    tel.update(slots_done=1)
    try:
        await until(lambda: tel.dropped >= 5, 5, "drops of a refused publisher")
        assert not tel.connected and tel.published == 0
    finally:
        await tel.close()
    refused = [r for r in caplog.records if "refused the connection" in r.getMessage()]
    assert len(refused) == 1, [r.getMessage() for r in caplog.records]


async def test_a_login_publishes_only_under_its_own_topics(authed: AuthedBroker) -> None:
    """node-0's login spoofs node-1's status and metrics, a lost controller, a made-up node:
    none of it reaches ``watch``, node-1's own messages do."""
    node1_status = status_topic(RUN, "node", "1")
    node0_status = status_topic(RUN, "node", "0")
    spoofs = [(node1_status, "lost"), (metrics_topic(RUN, "node", "1"), '{"slots_done":999}'),
              (status_topic(RUN, "controller", "0"), "lost"),
              (status_topic(RUN, "node", "7"), "running"),
              (status_topic("other-run", "node", "1"), "lost"), ("elsewhere/x", "x")]
    async with collecting(authed.url, authed.watch) as col:
        with publisher(authed.url, "node", "1", authed.login("node-1")):
            await until(lambda: len(col.payloads(metrics_topic(RUN, "node", "1"))) >= 2, 10,
                        "node-1's own metrics")
            async with client(authed.url, authed.login("node-0")) as spoofer:
                for topic, payload in spoofs:
                    await spoofer.publish(topic, payload, qos=1, retain=True)
                # its own topic, after the spoofs on the same connection: once this arrived,
                # the broker has handled every spoof before it
                await spoofer.publish(node0_status, "marker", qos=1, retain=True)
            await until(lambda: "marker" in col.payloads(node0_status), 5, "node-0's marker")
            assert "running" in col.payloads(node1_status)
            for topic, payload in spoofs:
                assert (topic, payload) not in [(t, p) for t, p, _ in col.messages], topic
            assert {t for t, _, _ in col.messages} == {
                node0_status, node1_status, metrics_topic(RUN, "node", "1")}
    # a late watcher sees the genuine retained statuses only
    async with collecting(authed.url, authed.watch) as late:
        await until(lambda: len(late.retained()) >= 2, 5, "retained statuses")
        assert late.retained() == {node0_status: "marker", node1_status: "lost"}  # its will


async def test_watch_reads_everything_and_writes_nothing(authed: AuthedBroker) -> None:
    node0_status = status_topic(RUN, "node", "0")
    async with collecting(authed.url, authed.watch) as col:
        async with client(authed.url, authed.watch) as w:
            await w.publish(node0_status, "lost", qos=1, retain=True)
            await w.publish(status_topic(RUN, "controller", "0"), "lost", qos=1, retain=True)
        async with client(authed.url, authed.login("node-0")) as n0:  # after watch's PUBACKs
            await n0.publish(node0_status, "running", qos=1, retain=True)
        await until(lambda: col.payloads(node0_status) == ["running"], 5, "node-0's status")
        assert [t for t, _, _ in col.messages] == [node0_status]  # nothing from watch


async def test_another_login_cannot_guess_a_process_client_id(authed: AuthedBroker) -> None:
    """node-1's login connects with the ids node-0's could have: node-0 stays connected. With
    node-0's real (random) id it does take the connection over: the id's 128 random bits,
    never published, are what protects it."""
    status, metrics = status_topic(RUN, "node", "0"), metrics_topic(RUN, "node", "0")
    async with collecting(authed.url, authed.watch) as col:
        with publisher(authed.url, "node", "0", authed.login("node-0")) as (pid, real_id):
            assert real_id.startswith(f"rrmbed-{RUN}-node-0-{pid}-") and len(real_id) > 40
            await until(lambda: len(col.payloads(metrics)) >= 2, 10, "node-0's metrics")
            for guess in ("node-0", f"rrmbed-{RUN}-node-0-{pid}", f"rrmbed-{RUN}-node-0",
                          "rrmbed-watch-1"):
                async with client(authed.url, authed.login("node-1"), identifier=guess):
                    await asyncio.sleep(0.05)
            seen = len(col.payloads(metrics))
            await until(lambda: len(col.payloads(metrics)) >= seen + 3, 5, "metrics going on")
            assert "lost" not in col.payloads(status), col.payloads(status)
            async with client(authed.url, authed.login("node-1"), identifier=real_id):
                await until(lambda: "lost" in col.payloads(status), 5, "the control takeover")


async def test_watch_logs_in_with_the_keys(authed: AuthedBroker,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None)
    state = await watch(authed.url, RUN, 0.5, console=console, refresh_s=0.1)
    assert not state.connected and state.connection_failures >= 1
    assert "not connected" in out.getvalue() and "authori" in state.last_error.lower()
    state = await watch(authed.url, RUN, 0.5, console=console, login=authed.watch)
    assert state.connected and state.connection_failures == 0
    capsys.readouterr()
    assert await asyncio.to_thread(watch_main, authed.url, None, 0.5, authed.keys) == 0
    assert "(connected" in capsys.readouterr().out  # the `rrmbed watch --keys DIR` path
    assert await asyncio.to_thread(watch_main, authed.url, RUN, 0.1,
                                   authed.keys.parent / "nokeys") == 2
    assert "watch.password" in capsys.readouterr().err


# --------------------------------------------------------------------------- the launcher


def telemetry_line(proc: subprocess.Popen[str], timeout_s: float = 60) -> re.Match[str]:
    """The launcher's "telemetry on URL (logins from DIR; ...)" line, parsed."""
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout_s
    lines = []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], 0.5)
        if ready:
            line = proc.stderr.readline()
            lines.append(line)
            found = re.search(r"telemetry on (mqtt://\S+) \(logins from (\S+); watch with: "
                              r"rrmbed watch --broker \1 --run \S+ --keys \2\)", line)
            if found:
                return found
        if proc.poll() is not None and not ready:
            break
    pytest.fail(f"no telemetry line from the launcher: {lines}")


def children(pid: int) -> dict[int, str]:
    """pid -> command name of the processes whose parent is ``pid``."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            text = stat.read_text()
            comm, rest = text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:]
            if int(rest.split()[1]) == pid:
                found[int(stat.parent.name)] = comm
    return found


async def test_a_sigkilled_launcher_leaves_no_broker(tmp_path: Path, spawn: Spawn,
                                                     mosquitto_binary: str) -> None:
    """A run with ``--keys DIR`` (its broker takes DIR's logins); SIGKILL the launcher: its
    broker, like every process of the run, dies with it and frees the port. The broker's
    temporary folder, marked as the launcher's, is then an orphan to remove."""
    out, keys = tmp_path / "killed", tmp_path / "keys"
    names = ["controller", "channel-server", "node-0", "node-1", "node-2"]
    write_keys(keys, names)
    write_broker_auth(keys, names)
    proc = spawn("run", str(S3), "--scheme", "round-robin", "--runner", "network", "--slots",
                 "100000", "--seed", "1", "--out", str(out), "--set", 'timing.clock="realtime"',
                 "--keys", str(keys))
    found = telemetry_line(proc)
    assert Path(found.group(2)) == keys
    url = found.group(1)
    port = parse_broker_url(url)[1]
    brokers = [pid for pid, comm in children(proc.pid).items() if comm == "mosquitto"]
    assert len(brokers) == 1 and port_open(port), children(proc.pid)
    argv = Path(f"/proc/{brokers[0]}/cmdline").read_bytes().split(b"\0")
    workdir = Path(argv[argv.index(b"-c") + 1].decode()).parent  # the launcher's temp folder
    assert owner_of(workdir) == (proc.pid, process_start(proc.pid))
    async with client(url, watch_login(keys)):  # DIR's logins, and only those
        pass
    with pytest.raises(aiomqtt.MqttError):
        async with client(url, None):
            pass
    deadline = time.monotonic() + 60
    while not (out / "processes.json").exists():
        assert proc.poll() is None and time.monotonic() < deadline
        await asyncio.sleep(0.05)
    run_pids = list(children(proc.pid))
    assert len(run_pids) == 6  # the broker, controller, channel server, 3 nodes
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in run_pids) or port_open(port):
        assert time.monotonic() < deadline, {p: alive(p) for p in run_pids}
        await asyncio.sleep(0.05)
    assert workdir.is_dir()  # what a SIGKILLed launcher cannot remove (a few bytes of config)
    remove_orphans(workdir.parent)  # what the next launcher does first (next test)
    assert not workdir.exists()


def test_the_next_run_removes_what_a_sigkilled_launcher_left(tmp_path: Path, spawn: Spawn,
                                                             mosquitto_binary: str) -> None:
    """A launcher with fresh keys and ipc endpoints, SIGKILLed mid-run, leaves its key folder
    (CURVE secrets), its broker's folder and its socket folder; the next run removes them
    first, and leaves nothing of its own. Both runs get a private TMPDIR (short, for the ipc
    paths), so no other run's folders take part."""
    tmp = Path(tempfile.mkdtemp(prefix="rt-", dir="/tmp"))
    env = {**os.environ, "TMPDIR": str(tmp)}
    try:
        out = tmp_path / "killed"
        proc = spawn("run", str(S3), "--scheme", "round-robin", "--runner", "network",
                     "--slots", "100000", "--seed", "1", "--out", str(out), "--set",
                     'timing.clock="realtime"', "--endpoints", "ipc", env=env)
        keys = Path(telemetry_line(proc).group(2))
        deadline = time.monotonic() + 60
        while not (out / "processes.json").exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        left = sorted(tmp.iterdir())
        assert [f.name.split("-")[1] for f in left] == ["ipc", "keys", "mosquitto"], left
        assert keys in left and (keys / "node-0.secret").is_file()
        assert all(owner_of(f) == (proc.pid, process_start(proc.pid)) for f in left)
        run_pids = list(children(proc.pid))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in run_pids):
            assert time.monotonic() < deadline, {p: alive(p) for p in run_pids}
            time.sleep(0.05)
        assert sorted(tmp.iterdir()) == left  # the killed launcher removed nothing
        r = rrmbed("run", str(S3), "--scheme", "round-robin", "--runner", "network",
                   "--slots", "5", "--seed", "1", "--out", str(tmp_path / "next"), env=env)
        assert r.returncode == 0, r.stderr
        assert "removed the temporary folders of killed runs" in r.stderr, r.stderr
        assert all(str(f) in r.stderr for f in left), r.stderr
        assert list(tmp.iterdir()) == []
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


async def test_a_run_lets_in_its_processes_and_watch_only(tmp_path: Path,
                                                          mosquitto_binary: str) -> None:
    """An rrmbed network run with the launcher's own broker: the channel server, the
    controller and every node publish, and it reaches ``watch`` (the printed command's
    login); a lost controller and a made-up node spoofed with node-0's key never do;
    anonymous clients are refused; the broker and the fresh keys go with the run."""
    run = "authed-run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "controller.cli", "run", str(S3), "--scheme", "round-robin",
         "--runner", "network", "--slots", "150", "--seed", "2", "--out", str(tmp_path / run),
         "--set", 'timing.clock="realtime"'], cwd=ROOT, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        found = telemetry_line(proc)
        url, keys = found.group(1), Path(found.group(2))
        node0 = MqttLogin("node-0", load_keys(keys, "node-0").mqtt_password)
        async with collecting(url, watch_login(keys), subscription(run)) as col:
            with pytest.raises(aiomqtt.MqttError):
                async with client(url, None):
                    pass
            async with client(url, node0) as spoofer:
                await spoofer.publish(status_topic(run, "controller", "0"), "lost", qos=1,
                                      retain=True)
                await spoofer.publish(status_topic(run, "node", "7"), "running", qos=1,
                                      retain=True)
            _, err = await asyncio.to_thread(proc.communicate, timeout=120)
            assert proc.returncode == 0, err
            roles = [("channel-server", "0"), ("controller", "0"),
                     *[("node", str(b)) for b in range(3)]]
            await until(lambda: all(col.payloads(status_topic(run, r, i))[-1:] == ["done"]
                                    for r, i in roles), 10, "every process done")
            for r, i in roles:
                samples = col.payloads(metrics_topic(run, r, i))
                slots = [json.loads(m)["slots_done"] for m in samples]
                assert slots == sorted(slots) and slots[-1] >= 100, (r, i, slots)
            node = json.loads(col.payloads(metrics_topic(run, "node", "1"))[-1])
            assert node["backhaul_bytes"] > 0  # round-robin forwards are metered live
            assert "lost" not in col.payloads(status_topic(run, "controller", "0"))
            assert not col.payloads(status_topic(run, "node", "7"))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert not keys.exists() and not port_open(parse_broker_url(url)[1])
