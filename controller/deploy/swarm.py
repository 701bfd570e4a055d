"""Render a Docker Swarm stack file for one network run: one service per process, over hosts.

``render_stack(...)`` returns the YAML text that ``rrmbed compose SCENARIO --swarm`` prints,
for ``docker stack deploy -c FILE STACK``. It writes the same deployment as the compose file
(:func:`controller.deploy.compose.plan`: the same services, images, commands, users, mounts
and key files) in swarm's terms:

- one overlay network, ``rrmbed`` (``STACK_rrmbed``), attachable so that a plain
  ``docker run --network STACK_rrmbed ...`` (``rrmbed watch``) can join it; services find
  each other by service name through swarm's DNS, with ``endpoint_mode: dnsrr`` (the name
  resolves to the task's own address: every process is one task, and the default virtual
  IP would need IPVS in the kernel for nothing);
- ``deploy.restart_policy: condition: none`` for the run's processes (a run ends; a
  restarted node would be a second run), ``on-failure`` for the broker, which serves until
  the stack is removed;
- placement by node labels (:data:`LABEL`). By default the controller, the channel server
  and the broker (:data:`~controller.deploy.compose.CORE_GROUP`) run on a manager, where
  the stack is deployed and the runs folder is, and the node processes anywhere: that works
  on a single node with no labels. ``require_labels`` puts each service only on hosts whose
  ``rrmbed.role`` label is its group: ``controller`` for those three, the node role for node
  processes (``node`` for a BS, ``vehicle``, ``pair`` for a D2D pair, ``link``); swarm puts
  each task on the eligible host with the fewest tasks, so BSs, vehicles or pairs spread
  over the hosts that carry their label;
- secrets as swarm secrets (the CLI reads the key files where it runs and swarm ships each
  to the host of the one task that uses it), owned in the container by the service's user
  (``$RRMBED_UID``, default 10001), mode 0400 (``public.json`` 0444);
- ``hostname: "{{.Node.Hostname}}"``: each process reports the swarm node it ran on, so the
  run's ``summary.json`` ``hosts`` says which machine ran which process.

Results come back as with compose: only the controller writes the run directory (the runs
folder or volume on the controller's host); every other process sends what the run records
to the controller over the network, and its log stays with swarm (``docker service logs``
gathers a service's log from whichever host ran it).
"""

from __future__ import annotations

from dataclasses import replace

from controller.deploy.compose import (
    CORE_GROUP,
    DEFAULT_BROKER_IMAGE,
    RUN_GID,
    RUN_UID,
    Deployment,
    Process,
    plan,
    q,
)

LABEL = "rrmbed.role"
"""Node label that ``require_labels`` places services by (``docker node update --label-add
rrmbed.role=node HOST``)."""
CORE_DEFAULT = "node.role == manager"
"""Where the controller's group runs without ``require_labels``."""
NETWORK = "rrmbed"
"""The stack's overlay network (``STACK_rrmbed`` once deployed)."""
PUBLIC_MODE = 0o444
"""Mode of ``public.json`` in /run/secrets (public keys)."""
SECRET_MODE = 0o400
"""Mode of a secret key or a broker file in /run/secrets: its service's user only."""


def constraints(group: str, require_labels: bool) -> list[str]:
    """Placement constraints of a service of ``group``."""
    if require_labels:
        return [f"node.labels.{LABEL} == {group}"]
    return [CORE_DEFAULT] if group == CORE_GROUP else []


def stack_service(p: Process, require_labels: bool) -> list[str]:
    lines = [f"  {p.name}:", f"    image: {q(p.image)}"]
    if p.user is not None:
        lines.append(f"    user: {q(p.user)}")
    # A Go template swarm fills per task: the process reports the host it runs on.
    lines.append(f"    hostname: {q('{{.Node.Hostname}}')}")
    lines.append("    command:")
    lines += [f"      - {q(arg)}" for arg in p.command]
    if p.volumes:
        lines.append("    volumes:")
        lines += [f"      - {q(v)}" for v in p.volumes]
    if p.secrets:
        lines.append("    secrets:")
        for name in p.secrets:
            mode = PUBLIC_MODE if name == "public.json" else SECRET_MODE
            lines += [f"      - source: {q(name)}", f"        target: {q(name)}",
                      f"        uid: {q(RUN_UID)}", f"        gid: {q(RUN_GID)}",
                      f"        mode: {mode}  # {mode:#o}"]
    lines += ["    networks:", f"      - {q(NETWORK)}",
              "    deploy:",
              f"      endpoint_mode: {q('dnsrr')}",
              "      restart_policy:",
              f"        condition: {q('none' if p.ends else 'on-failure')}"]
    placed = constraints(p.group, require_labels)
    if placed:
        lines += ["      placement:", "        constraints:"]
        lines += [f"          - {q(c)}" for c in placed]
    return lines


def write_stack(d: Deployment, require_labels: bool = False) -> str:
    """The stack file of a planned deployment."""
    d = replace(d, argv=[*d.argv, "--swarm", *(["--require-labels"] if require_labels else [])])
    if require_labels:
        groups = sorted({p.group for p in d.processes})
        where = (f"# Placement: hosts labelled {LABEL}=" + " / ".join(groups) +
                 f" (docker node update --label-add {LABEL}=GROUP HOST)")
    else:
        where = (f"# Placement: controller, channel-server, broker on a manager "
                 f"({CORE_DEFAULT}); nodes on any host")
    out = [*d.header([
        "# Deploy: docker stack deploy --resolve-image never -c FILE STACK  (on a manager; "
        "every host has the images)",
        "# Wait:   docker service ps STACK_controller  (Complete: the run directory is "
        "written)",
        "# Clean:  docker stack rm STACK",
        where], " on the controller's host"),
        'version: "3.8"',
        "services:",
    ]
    for p in d.processes:
        out += stack_service(p, require_labels)
    out += ["networks:", f"  {NETWORK}:", f"    driver: {q('overlay')}", "    attachable: true"]
    out += d.volumes_section()
    out += d.secrets_section()
    return "\n".join(out) + "\n"


def render_stack(scenario_path: str, n_nodes: int, scheme: str, slots: int, seed: int,
                 weights: str | None, image: str, runs_dir: str, *,
                 broker_image: str = DEFAULT_BROKER_IMAGE, telemetry: bool = True,
                 run_name: str | None = None, node_kind: str = "node",
                 keys: str | None = None, insecure: bool = False,
                 require_labels: bool = False) -> str:
    """The stack file for one run of ``scheme`` on the scenario (``docker stack deploy``).

    The arguments are :func:`~controller.deploy.compose.render_compose`'s (no ``subnet``:
    swarm has no fixed service addresses, and its DNS needs iptables anyway), plus
    ``require_labels``: place every service by its host's ``rrmbed.role`` label (see the
    module's docstring). Bind mounts (the scenario, weights, a runs folder) are paths on the
    controller's host, which must exist there (``mkdir -p runs`` first: swarm does not
    create a missing bind source); relative ones are resolved by ``docker stack deploy``
    against the stack file's folder.
    """
    d = plan(scenario_path, n_nodes, scheme, slots, seed, weights, image, runs_dir,
             broker_image=broker_image, telemetry=telemetry, run_name=run_name,
             node_kind=node_kind, keys=keys, insecure=insecure)
    return write_stack(d, require_labels)
