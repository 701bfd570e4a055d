"""Render a docker-compose file for one network run: one container per process.

``render_compose(...)`` returns the YAML text that ``rrmbed compose SCENARIO`` prints.
Services: ``controller`` (reads the scenario, writes the run directory), ``channel-server``,
``node-0`` .. ``node-{B-1}`` (``vehicle-0`` .. for a V2X scenario) and, with telemetry,
``mosquitto``. Every rrmbed service runs the same image and the same entry points as the
local launcher; endpoints are service names on the project's network (controller 5550,
channel-server 5551, nodes 5552).

Host paths are written as given (``./`` is added to relative ones, which compose resolves
against the compose file's directory); ``$`` is escaped so compose does not interpolate it.
A ``runs_dir`` without ``/`` and not starting with ``.`` or ``~`` is a named volume.

What a run deploys is planned once (:func:`plan`: the processes, their commands, images,
users, mounts and secrets, the run's name and key files); this module writes that plan as a
compose file and :mod:`controller.deploy.swarm` as a Docker Swarm stack file.

Pure string building (no YAML library): every scalar is a JSON string, which YAML reads as
a double-quoted scalar.
"""

from __future__ import annotations

import ipaddress
import json
import posixpath
import shlex
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from controller.deploy.broker import ACL_FILE, PASSWORD_FILE

CONTROLLER_PORT = 5550
"""Controller inbox port inside the project network."""
CHANNEL_SERVER_PORT = 5551
"""Channel-server inbox port."""
NODE_PORT = 5552
"""Node inbox port (every node has its own container, so one port serves all)."""
BROKER_PORT = 1883
"""MQTT port of the mosquitto service."""
DEFAULT_BROKER_IMAGE = "eclipse-mosquitto:2"
"""Broker image for users with a registry; offline builds use ``rrmbed-base:bookworm``."""
RUNS_MOUNT = "/runs"
"""Where the runs volume is mounted in the controller container."""
SCENARIO_MOUNT = "/scenario"
"""Directory in the controller container holding the mounted scenario file."""
WEIGHTS_MOUNT = "/weights"
"""Directory in the controller container holding the mounted weights file."""
SECRETS_MOUNT = "/run/secrets"
"""Where compose mounts a service's secrets: its own key and the run's public keys."""



def mosquitto_command(logins: bool) -> str:
    """The broker service's shell command: mosquitto 2 listens on loopback only unless
    configured, so it writes its config first (in the eclipse image's alpine sh and a
    Debian image with the mosquitto package alike). ``logins``: only the users of the
    password file in /run/secrets, each limited by the ACL there; else anyone."""
    access = ("allow_anonymous false\\n"
              f"password_file {SECRETS_MOUNT}/{PASSWORD_FILE}\\n"
              f"acl_file {SECRETS_MOUNT}/{ACL_FILE}\\n") if logins else "allow_anonymous true\\n"
    return (f"printf 'listener {BROKER_PORT} 0.0.0.0\\n{access}' > /tmp/mosquitto.conf"
            " && exec mosquitto -c /tmp/mosquitto.conf")


def q(value: str) -> str:
    """A YAML double-quoted scalar (JSON string syntax is a subset of it)."""
    return json.dumps(value)


def escape_dollars(value: str) -> str:
    """Compose interpolates ``$VAR``; ``$$`` is a literal dollar."""
    return value.replace("$", "$$")


def env_default(var: str, value: str) -> str:
    """``${VAR:-value}``: the rendered value unless the environment overrides it."""
    return f"${{{var}:-{escape_dollars(value)}}}"


def host_path(path: str) -> str:
    """A bind-mount source compose will not mistake for a named volume."""
    if path.startswith(("/", ".", "~")):
        return escape_dollars(path)
    return escape_dollars("./" + path)


def is_named_volume(runs_dir: str) -> bool:
    """``runs_dir`` names a docker volume rather than a host directory."""
    return "/" not in runs_dir and not runs_dir.startswith((".", "~"))


def default_run_name(scenario_path: str, scheme: str, seed: int) -> str:
    """Run directory name under the runs volume, unless ``$RRMBED_RUN`` overrides it."""
    return f"{PurePosixPath(scenario_path).stem}-{scheme}-s{seed}"


def tcp(host: str, port: int) -> str:
    return f"tcp://{host}:{port}"


def node_service(b: int, kind: str = "node") -> str:
    return f"{kind}-{b}"


def static_addresses(subnet: str, names: list[str]) -> dict[str, str]:
    """One fixed IPv4 address per service, skipping the first host (the bridge gateway)."""
    net = ipaddress.ip_network(subnet)
    hosts = net.hosts()
    next(hosts, None)  # the gateway
    addresses = {}
    for name in names:
        addr = next(hosts, None)
        if addr is None:
            raise ValueError(f"subnet {subnet} has too few addresses for {len(names)} services")
        addresses[name] = str(addr)
    return addresses


def service(name: str, image: str, command: list[str], *, depends_on: list[str] | None = None,
            volumes: list[str] | None = None, user: str | None = None,
            addresses: dict[str, str] | None = None,
            secrets: list[str] | None = None) -> list[str]:
    lines = [f"  {name}:", f"    image: {q(image)}"]
    if user is not None:
        lines.append(f"    user: {q(user)}")
    if addresses is not None:
        # Names resolve from /etc/hosts: no need for docker's embedded DNS (which needs
        # iptables inside each container).
        lines += ["    networks:", "      rrmbed:", f"        ipv4_address: {q(addresses[name])}",
                  "    extra_hosts:"]
        lines += [f"      - {q(f'{other}:{ip}')}" for other, ip in addresses.items()
                  if other != name]
    lines.append("    command:")
    lines += [f"      - {q(arg)}" for arg in command]
    if depends_on:
        lines.append("    depends_on:")
        lines += [f"      - {q(d)}" for d in depends_on]
    if volumes:
        lines.append("    volumes:")
        lines += [f"      - {q(v)}" for v in volumes]
    if secrets:
        lines.append("    secrets:")
        lines += [f"      - {q(x)}" for x in secrets]
    lines.append('    restart: "no"')
    return lines


# --------------------------------------------------------------------------- the plan

CORE_GROUP = "controller"
"""Placement group of the controller, the channel server and the broker (a node process's
group is its role: ``node``, ``vehicle``, ``pair``, ``link``)."""
RUN_UID = "${RRMBED_UID:-10001}"
"""The rrmbed services' user id, overridable when compose or ``docker stack`` runs."""
RUN_GID = "${RRMBED_GID:-10001}"
"""Their group id."""


@dataclass(frozen=True)
class Process:
    """One service of a run, as both writers render it."""

    name: str
    """Service name, also the host name peers dial (``node-0``)."""
    image: str
    """Image, as ``${VAR:-default}`` so it can be overridden when the file is used."""
    command: list[str]
    group: str
    """Placement group: :data:`CORE_GROUP` or the node role."""
    user: str | None = None
    volumes: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    """Names of the run's secrets this service reads from /run/secrets."""
    depends_on: list[str] = field(default_factory=list)
    ends: bool = True
    """The process exits when the run ends (the broker serves until it is stopped)."""


@dataclass(frozen=True)
class Deployment:
    """Everything a run deploys, whatever writes it: compose file or swarm stack file."""

    processes: list[Process]
    """In file order: the broker (with telemetry), controller, channel-server, nodes."""
    argv: list[str]
    """The ``rrmbed compose`` command line that renders this deployment."""
    scenario_path: str
    keys: str | None
    runs_dir: str
    run_name: str
    secret_files: list[tuple[str, str]]
    """(secret name, host path) for every secret, in file order; empty without keys."""

    @property
    def named_volume(self) -> str | None:
        """The runs volume's name when ``runs_dir`` names one."""
        return escape_dollars(self.runs_dir) if is_named_volume(self.runs_dir) else None

    def header(self, how: list[str], where: str = "") -> list[str]:
        """The comment lines both files start with; ``how``: the writer's own lines (run,
        clean), ``where``: a note on the results line."""
        return [
            "# Generated by: " + " ".join(shlex.quote(a) for a in self.argv),
            *([f"# Keys:  rrmbed keys {self.keys} --scenario {self.scenario_path} (one CURVE "
               "key pair per process, the broker's logins)"] if self.keys is not None else []),
            *how,
            f"# Results: {self.runs_dir}/${{RRMBED_RUN:-{self.run_name}}}/ (summary.json, "
            f"metrics.csv, ...){where}",
        ]

    def secrets_section(self) -> list[str]:
        """The top-level ``secrets:`` (each from its file in the key directory)."""
        if not self.secret_files:
            return []
        out = ["secrets:"]
        for name, path in self.secret_files:
            out += [f"  {name}:", f"    file: {q(host_path(path))}"]
        return out

    def volumes_section(self) -> list[str]:
        name = self.named_volume
        return [] if name is None else ["volumes:", f"  {name}: {{}}"]


def plan(scenario_path: str, n_nodes: int, scheme: str, slots: int, seed: int,
         weights: str | None, image: str, runs_dir: str, *,
         broker_image: str = DEFAULT_BROKER_IMAGE, telemetry: bool = True,
         run_name: str | None = None, subnet: str | None = None,
         node_kind: str = "node", keys: str | None = None,
         insecure: bool = False) -> Deployment:
    """The processes of one run of ``scheme`` on the scenario, checked; the arguments are
    :func:`render_compose`'s."""
    if (keys is None) == (not insecure):
        raise ValueError("pass keys (a directory from `rrmbed keys`) or insecure=True, "
                         "not both or neither")
    if n_nodes < 1:
        raise ValueError(f"n_nodes must be >= 1, got {n_nodes}")
    from channel_server.kinds import KINDS

    if not KINDS.by_role(node_kind):
        roles = sorted({KINDS.get(k).node_role for k in KINDS.names()})
        raise ValueError(f"node_kind {node_kind!r} is no scenario kind's node role; known: "
                         f"{', '.join(roles)}")
    if slots < 1:
        raise ValueError(f"slots must be >= 1, got {slots}")
    name = run_name or default_run_name(scenario_path, scheme, seed)
    if "/" in name or name in ("", ".", ".."):
        raise ValueError(f"run name {name!r} must be a single path component")
    scenario_in = posixpath.join(SCENARIO_MOUNT, PurePosixPath(scenario_path).name)
    controller_ep = tcp("controller", CONTROLLER_PORT)

    out_dir = f"{RUNS_MOUNT}/${{RRMBED_RUN:-{escape_dollars(name)}}}"
    ctl_cmd = ["rrmbed", "controller", scenario_in, "--scheme", scheme, "--slots", str(slots),
               "--seed", str(seed), "--out", out_dir,
               "--bind", tcp("0.0.0.0", CONTROLLER_PORT), "--advertise", controller_ep]
    runs_src = escape_dollars(runs_dir) if is_named_volume(runs_dir) else host_path(runs_dir)
    ctl_volumes = [f"{host_path(scenario_path)}:{scenario_in}:ro", f"{runs_src}:{RUNS_MOUNT}"]
    if weights is not None:
        weights_in = posixpath.join(WEIGHTS_MOUNT, PurePosixPath(weights).name)
        ctl_cmd += ["--weights", weights_in]
        ctl_volumes.append(f"{host_path(weights)}:{weights_in}:ro")
    if telemetry:
        ctl_cmd += ["--broker", f"mqtt://mosquitto:{BROKER_PORT}"]
    else:
        ctl_cmd += ["--no-telemetry"]

    argv = ["rrmbed", "compose", scenario_path, "--nodes", str(n_nodes), "--scheme", scheme,
            "--slots", str(slots), "--seed", str(seed), "--image", image, "--runs", runs_dir]
    if weights is not None:
        argv += ["--weights", weights]
    if broker_image != DEFAULT_BROKER_IMAGE:
        argv += ["--broker-image", broker_image]
    if not telemetry:
        argv += ["--no-telemetry"]
    if run_name is not None:
        argv += ["--run-name", run_name]
    if subnet is not None:
        argv += ["--subnet", subnet]
    if keys is not None:
        argv += ["--keys", keys]
    else:
        argv += ["--insecure"]
    security = ["--insecure"] if keys is None else ["--keys", SECRETS_MOUNT]

    def secrets(name: str) -> list[str]:
        return [] if keys is None else ["public.json", f"{name}.secret"]

    rrmbed_image = env_default("RRMBED_IMAGE", image)
    user = f"{RUN_UID}:{RUN_GID}"
    keyed_user = user if keys is not None else None
    processes = []
    if telemetry:
        processes.append(Process(
            "mosquitto", env_default("RRMBED_BROKER_IMAGE", broker_image),
            ["sh", "-c", mosquitto_command(keys is not None)], CORE_GROUP, user=keyed_user,
            secrets=[] if keys is None else [PASSWORD_FILE, ACL_FILE], ends=False))
    # The controller is the only writer of the runs volume; RRMBED_UID/GID let it write
    # into a host directory owned by the caller (the image's user is 10001:10001).
    processes.append(Process(
        "controller", rrmbed_image, [*ctl_cmd, *security], CORE_GROUP, user=user,
        volumes=ctl_volumes, secrets=secrets("controller"),
        depends_on=["mosquitto"] if telemetry else []))
    processes.append(Process(
        "channel-server", rrmbed_image,
        ["rrmbed", "channel-server", "--controller", controller_ep,
         "--bind", tcp("0.0.0.0", CHANNEL_SERVER_PORT),
         "--advertise", tcp("channel-server", CHANNEL_SERVER_PORT), *security],
        CORE_GROUP, user=keyed_user, secrets=secrets("channel-server"),
        depends_on=["controller"]))
    for b in range(n_nodes):
        node = node_service(b, node_kind)
        processes.append(Process(
            node, rrmbed_image,
            ["rrmbed", "node", "--role", node_kind, "--id", str(b),
             "--controller", controller_ep, "--bind", tcp("0.0.0.0", NODE_PORT),
             "--advertise", tcp(node, NODE_PORT), *security],
            node_kind, user=keyed_user, secrets=secrets(node), depends_on=["controller"]))

    secret_files: list[tuple[str, str]] = []
    if keys is not None:
        secret_files.append(("public.json", posixpath.join(keys, "public.json")))
        secret_files += [(f"{p.name}.secret", posixpath.join(keys, f"{p.name}.secret"))
                         for p in processes if p.name != "mosquitto"]
        if telemetry:
            secret_files += [(f, posixpath.join(keys, f)) for f in (PASSWORD_FILE, ACL_FILE)]
    return Deployment(processes, argv, scenario_path, keys, runs_dir, name, secret_files)


# --------------------------------------------------------------------------- compose


def render_compose(scenario_path: str, n_nodes: int, scheme: str, slots: int, seed: int,
                   weights: str | None, image: str, runs_dir: str, *,
                   broker_image: str = DEFAULT_BROKER_IMAGE, telemetry: bool = True,
                   run_name: str | None = None, subnet: str | None = None,
                   node_kind: str = "node", keys: str | None = None,
                   insecure: bool = False) -> str:
    """The docker-compose YAML for one run of ``scheme`` on the scenario.

    ``n_nodes`` is the number of node services, each ``rrmbed node --role <node_kind>``:
    the scenario kind's node role (``"node"``, one per BS; ``"vehicle"``, one per V2V
    transmitter of a V2X scenario; ``"pair"``, one per D2D pair, ...);
    ``weights`` a host path or None; ``image`` the rrmbed image for every rrmbed service;
    ``runs_dir`` the host directory (or named volume) mounted at /runs, where the
    controller writes ``/runs/$RRMBED_RUN`` (default ``<scenario>-<scheme>-s<seed>``).
    ``broker_image`` runs mosquitto when ``telemetry``; without telemetry there is no
    broker service and the controller gets ``--no-telemetry``. ``$RRMBED_IMAGE`` and
    ``$RRMBED_BROKER_IMAGE`` override the images when compose runs; ``$RRMBED_UID`` /
    ``$RRMBED_GID`` the controller's user (default 10001, the image's user).
    ``subnet`` (e.g. ``172.30.0.0/24``) gives every service a fixed address and an
    /etc/hosts entry for the others: for daemons running with ``--iptables=false`` on hosts
    without netfilter, where docker's embedded DNS does not work.
    ``keys``: a host directory written by ``rrmbed keys``; each rrmbed service gets the
    run's ``public.json`` and only its own ``<name>.secret`` as compose secrets (mounted at
    /run/secrets, readable by the service's user: ``$RRMBED_UID``, default 10001) and runs
    with ``--keys /run/secrets``; the broker service gets the directory's
    ``mosquitto.passwd`` and ``mosquitto.acl`` the same way, runs as ``$RRMBED_UID`` too
    and lets in only the run's processes (each logs in as itself and writes only its own
    topics) and ``watch`` (read only). Without keys, ``insecure`` must be said: the
    services then run with ``--insecure`` and the broker lets anyone in.
    """
    d = plan(scenario_path, n_nodes, scheme, slots, seed, weights, image, runs_dir,
             broker_image=broker_image, telemetry=telemetry, run_name=run_name, subnet=subnet,
             node_kind=node_kind, keys=keys, insecure=insecure)
    addresses = (static_addresses(subnet, [p.name for p in d.processes])
                 if subnet is not None else None)
    out = [*d.header([
        "# Run:   docker-compose up --exit-code-from controller",
        "#   or:  docker-compose up -d && docker wait \"$(docker-compose ps -q controller)\"",
        "# Clean: docker-compose down --volumes --remove-orphans"]),
        'version: "3.7"',
        "services:",
    ]
    for p in d.processes:
        out += service(p.name, p.image, p.command, depends_on=p.depends_on,
                       volumes=p.volumes, user=p.user, addresses=addresses,
                       secrets=p.secrets)
    if subnet is not None:
        out += ["networks:", "  rrmbed:", "    ipam:", "      config:",
                f"        - subnet: {q(subnet)}"]
    out += d.volumes_section()
    out += d.secrets_section()
    return "\n".join(out) + "\n"
