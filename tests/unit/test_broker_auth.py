"""The telemetry broker's logins: password derivation and hashes, the ACL, the key
directory's broker files, and the compose file's broker service (no broker runs here;
tests/integration/test_broker_auth.py puts all of it before a real mosquitto)."""

from __future__ import annotations

import base64
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from controller.cli import cli
from controller.deploy.broker import (
    ACL_FILE,
    PASSWORD_FILE,
    WATCH_PASSWORD_FILE,
    BrokerAuth,
    acl_text,
    hash_password,
    mosquitto_conf,
    watch_login,
    write_broker_auth,
)
from controller.deploy.compose import render_compose
from protocols.keys import KeysError, load_keys, mqtt_password, write_keys
from protocols.telemetry import MqttLogin, process_levels
from tests.helpers import ROOT


def test_password_hash_is_what_mosquitto_passwd_writes() -> None:
    # `mosquitto_passwd -b FILE node-0 secretpw` (mosquitto 2.0.11) wrote this line
    line = ("node-0:$7$101$eUOuUH5kz7jtwLOV$bRonYbwNC1FkFmsWfNM8hnNrONDkpZkeW4WyLv95YyFpt0qFKL13"
            "iS6QjT0C0gZlt588XrR5SJsbXuZMutJecw==")
    salt = "eUOuUH5kz7jtwLOV"
    assert "node-0:" + hash_password("secretpw", base64.b64decode(salt)) == line
    assert hash_password("secretpw", base64.b64decode(salt)) != hash_password("secretpw")
    assert hash_password("x").startswith("$7$101$")


def test_mqtt_password_is_derived_one_way_from_the_secret(tmp_path: Path) -> None:
    write_keys(tmp_path / "k", ["node-0", "node-1"])
    a, b = load_keys(tmp_path / "k", "node-0"), load_keys(tmp_path / "k", "node-1")
    assert a.mqtt_password == mqtt_password(a.secret) == load_keys(tmp_path / "k",
                                                                   "node-0").mqtt_password
    assert a.mqtt_password != b.mqtt_password and len(a.mqtt_password) == 43
    assert a.secret.decode() not in a.mqtt_password
    assert "secret" not in repr(MqttLogin("node-0", "secret"))


def test_process_levels_and_acl() -> None:
    assert process_levels("node-3") == ("node", "3")
    assert process_levels("vehicle-12") == ("vehicle", "12")
    assert process_levels("controller") == ("controller", "0")
    assert process_levels("channel-server") == ("channel-server", "0")
    with pytest.raises(ValueError):
        process_levels("a/b")
    text = acl_text(["controller", "node-1"])
    blocks = [b.splitlines() for b in text.split("\n\n")[1:]]
    assert blocks == [["user controller", "topic write rrmbed/+/controller/0/#"],
                      ["user node-1", "topic write rrmbed/+/node/1/#"],
                      ["user watch", "topic read rrmbed/#"]]
    assert "pattern" not in text and "readwrite" not in text  # nothing for anyone else


def test_key_directory_broker_files(tmp_path: Path) -> None:
    d = tmp_path / "k"
    names = ["controller", "channel-server", "node-0"]
    write_keys(d, names)
    auth = write_broker_auth(d, names)
    assert auth == BrokerAuth(d / PASSWORD_FILE, d / ACL_FILE) == BrokerAuth.of(d)
    assert (d / PASSWORD_FILE).stat().st_mode & 0o777 == 0o600
    assert (d / WATCH_PASSWORD_FILE).stat().st_mode & 0o777 == 0o600
    users = dict(line.split(":", 1) for line in (d / PASSWORD_FILE).read_text().splitlines())
    assert list(users) == [*names, "watch"]
    for name, password in [(n, load_keys(d, n).mqtt_password) for n in names] + [
            ("watch", watch_login(d).password)]:
        _, seven, iterations, salt, _ = users[name].split("$")
        assert users[name] == hash_password(password, base64.b64decode(salt), int(iterations))
    assert watch_login(d).username == "watch" and len(watch_login(d).password) >= 40
    with pytest.raises(KeysError, match="exists already"):
        write_broker_auth(d, names)
    (d / ACL_FILE).unlink()
    with pytest.raises(KeysError, match="mosquitto.acl"):
        BrokerAuth.of(d)
    with pytest.raises(KeysError, match="watch.password"):
        watch_login(tmp_path)


def test_mosquitto_conf() -> None:
    auth = BrokerAuth(Path("/k/mosquitto.passwd"), Path("/k/mosquitto.acl"))
    conf = mosquitto_conf(1884, auth).splitlines()
    assert conf[0] == "listener 1884 127.0.0.1"
    assert {"allow_anonymous false", "password_file /k/mosquitto.passwd",
            "acl_file /k/mosquitto.acl"} <= set(conf)
    assert "allow_anonymous true" in mosquitto_conf(1884, None).splitlines()


def test_compose_broker_service_has_logins_only_with_keys() -> None:
    text = render_compose("s.toml", 2, "full", 50, 1, None, "i", "./r", keys="k")
    broker = text.split("  mosquitto:\n")[1].split("  controller:\n")[0]
    assert "allow_anonymous false" in broker and "allow_anonymous true" not in broker
    assert "password_file /run/secrets/mosquitto.passwd" in broker
    assert "acl_file /run/secrets/mosquitto.acl" in broker
    assert '- "mosquitto.passwd"' in broker and '- "mosquitto.acl"' in broker
    assert 'user: "${RRMBED_UID:-10001}:${RRMBED_GID:-10001}"' in broker
    assert '  mosquitto.passwd:\n    file: "./k/mosquitto.passwd"' in text
    assert '  mosquitto.acl:\n    file: "./k/mosquitto.acl"' in text
    insecure = render_compose("s.toml", 2, "full", 50, 1, None, "i", "./r", insecure=True)
    assert "allow_anonymous true" in insecure and "mosquitto.passwd" not in insecure
    no_broker = render_compose("s.toml", 2, "full", 50, 1, None, "i", "./r", keys="k",
                               telemetry=False)
    assert "mosquitto" not in no_broker


def test_committed_compose_file_is_what_its_command_generates(
        monkeypatch: pytest.MonkeyPatch) -> None:
    committed = (ROOT / "docker-compose.yml").read_text()
    argv = shlex.split(committed.splitlines()[0].removeprefix("# Generated by: "))
    assert argv[:2] == ["rrmbed", "compose"]
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(cli, argv[1:])
    assert result.exit_code == 0, result.output
    assert result.output == committed
    assert "allow_anonymous false" in committed
