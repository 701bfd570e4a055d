"""The swarm stack writer (`rrmbed compose --swarm`), no docker needed: the rendered text
against values written out by hand, and the compose file's processes kept as they are."""

from __future__ import annotations

import re
import shlex

import pytest
from click.testing import CliRunner

from controller.cli import cli
from controller.deploy.compose import render_compose
from controller.deploy.swarm import render_stack
from tests.helpers import ROOT, S3, SD

NAMES = ["mosquitto", "controller", "channel-server", "node-0", "node-1", "node-2"]


def blocks(text: str) -> dict[str, str]:
    """Service name -> its block of lines (two-space indented keys under ``services:``)."""
    body = text.split("\nservices:\n")[1]
    body = re.split(r"^\S", body, maxsplit=1, flags=re.M)[0]
    parts = re.split(r"^  ([a-z0-9-]+):\n", body, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def commands(block: str) -> list[str]:
    """The ``command:`` items of a service block."""
    items = []
    for line in block.split("    command:\n")[1].splitlines():
        if not line.startswith("      - "):
            break
        items.append(line.removeprefix("      - "))
    return items


def test_stack_runs_the_compose_files_processes_with_swarm_placement() -> None:
    stack = render_stack("scen/3cell.toml", 3, "round-robin", 50, 7, None, "rrmbed:t", "./r",
                         keys="k")
    compose = render_compose("scen/3cell.toml", 3, "round-robin", 50, 7, None, "rrmbed:t",
                             "./r", keys="k")
    s, c = blocks(stack), blocks(compose)
    assert list(s) == list(c) == NAMES
    for name in NAMES:  # the same image, user and command as compose gives each process
        assert commands(s[name]) == commands(c[name]), name
        for key in ("image", "user"):
            assert re.findall(rf"^    {key}: .*$", s[name], re.M) == \
                re.findall(rf"^    {key}: .*$", c[name], re.M), (name, key)
        lines = [ln.strip() for ln in s[name].splitlines()]
        assert 'endpoint_mode: "dnsrr"' in lines and '- "rrmbed"' in lines, name
        assert 'hostname: "{{.Node.Hostname}}"' in lines
        assert "depends_on:" not in lines and 'restart: "no"' not in lines  # compose only
        # every process that ends with the run is not restarted; the broker is on failure
        want = "on-failure" if name == "mosquitto" else "none"
        assert f'condition: "{want}"' in lines, name
        # default placement: the controller's group on a manager, the nodes anywhere
        if name.startswith("node-"):
            assert "placement:" not in lines, name
        else:
            assert lines[-1] == '- "node.role == manager"', name
    # Each service reads only its own secret, owned by the service's user, 0400.
    for name in NAMES[1:]:
        own = s[name].split("    secrets:\n")[1].split("    networks:\n")[0]
        assert re.findall(r'source: "([^"]+)"', own) == ["public.json", f"{name}.secret"]
        assert own.count('uid: "${RRMBED_UID:-10001}"') == 2
        assert own.count('gid: "${RRMBED_GID:-10001}"') == 2
        assert "mode: 292  # 0o444" in own and "mode: 256  # 0o400" in own
    broker = s["mosquitto"].split("    secrets:\n")[1]
    assert re.findall(r'source: "([^"]+)"', broker) == ["mosquitto.passwd", "mosquitto.acl"]
    # One attachable overlay network; the key files as in the compose file.
    assert 'networks:\n  rrmbed:\n    driver: "overlay"\n    attachable: true\n' in stack
    assert stack.split("\nsecrets:\n")[1] == compose.split("\nsecrets:\n")[1]
    assert 'version: "3.8"' in stack.splitlines()
    assert stack.splitlines()[0].endswith(" --keys k --swarm")


def test_required_labels_place_every_service_by_its_group() -> None:
    text = render_stack(str(SD), 4, "random", 20, 1, "w/m.npz", "i", "rrmbed-runs",
                        node_kind="pair", telemetry=False, insecure=True, require_labels=True)
    s = blocks(text)
    assert list(s) == ["controller", "channel-server", *(f"pair-{b}" for b in range(4))]
    for name, block in s.items():
        group = "pair" if name.startswith("pair-") else "controller"
        constraints = block.split("        constraints:\n")[1].splitlines()
        assert constraints == [f'          - "node.labels.rrmbed.role == {group}"'], name
        assert "secrets:" not in block and '- "--insecure"' in block
    assert '- "--no-telemetry"' in s["controller"]
    assert '- "rrmbed-runs:/runs"' in s["controller"] and '- "./w/m.npz:/weights/m.npz:ro"' \
        in s["controller"]
    assert text.endswith("volumes:\n  rrmbed-runs: {}\n")  # a named volume, as with compose
    assert text.splitlines()[0].endswith(" --insecure --swarm --require-labels")
    assert "# Placement: hosts labelled rrmbed.role=controller / pair" in text


def test_cli_swarm_file_regenerates_from_its_first_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    runner = CliRunner()
    first = runner.invoke(cli, ["compose", str(S3.relative_to(ROOT)), "--scheme",
                                "round-robin", "--slots", "50", "--seed", "7", "--keys", "keys",
                                "--swarm", "--require-labels"])
    assert first.exit_code == 0, first.output
    argv = shlex.split(first.output.splitlines()[0].removeprefix("# Generated by: "))
    assert argv[:2] == ["rrmbed", "compose"]
    again = runner.invoke(cli, argv[1:])
    assert again.exit_code == 0 and again.output == first.output
    assert sorted(blocks(first.output)) == sorted(NAMES)


@pytest.mark.parametrize(("extra", "message"), [
    (["--swarm", "--subnet", "10.9.0.0/24"], "--subnet is for compose"),
    (["--require-labels"], "add --swarm"),
])
def test_cli_refuses_options_of_the_other_writer(extra: list[str], message: str) -> None:
    r = CliRunner().invoke(cli, ["compose", str(S3), "--insecure", *extra])
    assert r.exit_code == 2 and message in r.output, r.output
