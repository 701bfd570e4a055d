"""The import rules of DESIGN.md, checked on the source text (parsed with ``ast``, never
imported):

1. ``protocols`` imports nothing from ``channel_server``, ``node`` or ``controller``;
2. math and sans-IO modules import neither ``zmq`` nor ``asyncio``: all of ``channel_server/``
   but its process shells (``process.py``, ``__main__.py``, anything under a ``shells/``
   folder), all of ``controller/learners/`` and ``controller/baselines/``, and every module
   under any ``roles/`` folder (roles are sans-IO state machines);
3. process shells never import the training drivers: no module named ``process.py`` and
   nothing under ``controller/roles/`` imports ``controller.training``;
4. our modules import one another without cycles.

An import counts wherever it is written (module top level, a function, a class, a ``try``),
except under ``if TYPE_CHECKING:``, which never runs. Only import statements count: a lazy
registry reference such as ``"package.module:attr"`` is a string, not an import. Edges go to
the module a statement names (``from a.b import c`` is an edge to ``a.b.c`` when that is a
module, else to ``a.b``); the implicit import of parent packages is not an edge.

Each rule is one checker function over ``{name: Module}``, run on the real packages by one
test and on small synthetic sources by a self-test that shows the rule can fail.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from tests.helpers import ROOT

PACKAGES = ("protocols", "channel_server", "node", "controller")
LOWER_LAYERS = ("channel_server", "node", "controller")
"""What ``protocols`` must not import."""
IO_MODULES = ("zmq", "asyncio")
"""What math and sans-IO modules must not import (and their submodules)."""
TRAINING = "controller.training"
"""What process shells must not import (and its submodules)."""


# --------------------------------------------------------------------------- the parser


@dataclass(frozen=True)
class Module:
    """One source file of our packages."""

    name: str
    """Dotted module name: ``channel_server.process``; a package is its ``__init__``."""
    path: str
    """Path relative to the repository, POSIX separators: ``channel_server/process.py``."""
    source: str = field(repr=False)
    """The file's text."""

    @property
    def parts(self) -> tuple[str, ...]:
        return PurePosixPath(self.path).parts

    @property
    def is_package(self) -> bool:
        return self.parts[-1] == "__init__.py"


@dataclass(frozen=True)
class Import:
    """One module named by one import statement."""

    importer: Module
    target: str
    """The module imported, dotted (ours resolved to a module file where one exists)."""
    line: int
    statement: str
    """The statement as written."""

    def __str__(self) -> str:
        return (f"{self.importer.path}:{self.line} ({self.importer.name}) imports "
                f"{self.target}: `{self.statement}`")


def module_name(path: str) -> str:
    """``a/b/c.py`` -> ``a.b.c``; ``a/b/__init__.py`` -> ``a.b``."""
    parts = list(PurePosixPath(path).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def make_modules(sources: dict[str, str]) -> dict[str, Module]:
    """Modules from {relative path: source}."""
    mods = (Module(module_name(p), p, s) for p, s in sources.items())
    return {m.name: m for m in mods}


def load_modules(root: Path = ROOT, packages: Iterable[str] = PACKAGES) -> dict[str, Module]:
    """Every ``.py`` file of ``packages`` under ``root``."""
    sources = {}
    for pkg in packages:
        for f in sorted((root / pkg).rglob("*.py")):
            if "__pycache__" not in f.parts:
                sources[f.relative_to(root).as_posix()] = f.read_text(encoding="utf-8")
    return make_modules(sources)


def _is_type_checking(test: ast.expr) -> bool:
    return ((isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
            or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _statements(nodes: Iterable[ast.AST]) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement in ``nodes``, at any depth, skipping ``if TYPE_CHECKING:``."""
    stack = list(nodes)[::-1]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse[::-1])  # the else branch does run
        else:
            stack.extend(list(ast.iter_child_nodes(node))[::-1])


def _base(mod: Module, node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` names (relative levels resolved)."""
    if node.level == 0:
        return node.module or ""
    package = mod.name.split(".") if mod.is_package else mod.name.split(".")[:-1]
    anchor = package[: len(package) - (node.level - 1)]
    return ".".join([*anchor, *([node.module] if node.module else [])])


def imports(mod: Module, known: Iterable[str] = ()) -> list[Import]:
    """Every module ``mod`` imports; ``known``: module names that exist (to tell a submodule
    from an attribute in ``from package import name``)."""
    return list(_imports(mod, frozenset(known)))


@functools.lru_cache(maxsize=4096)
def _imports(mod: Module, known: frozenset[str]) -> tuple[Import, ...]:
    tree = ast.parse(mod.source, filename=mod.path)
    found = []
    for node in _statements(tree.body):
        text = (ast.get_source_segment(mod.source, node) or ast.unparse(node)).splitlines()
        statement = " ".join(ln.strip() for ln in text)
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = _base(mod, node)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                       for a in node.names]
        for target in dict.fromkeys(targets):
            found.append(Import(mod, target, node.lineno, statement))
    return tuple(found)


def all_imports(mods: dict[str, Module]) -> list[Import]:
    known = frozenset(mods)
    return [imp for m in mods.values() for imp in _imports(m, known)]


def within(name: str, prefixes: Iterable[str]) -> bool:
    """Whether module ``name`` is one of ``prefixes`` or inside one of them."""
    return any(name == p or name.startswith(p + ".") for p in prefixes)


# --------------------------------------------------------------------------- the rules


def layer_violations(mods: dict[str, Module]) -> list[Import]:
    """Rule 1: imports of channel_server, node or controller by protocols."""
    return [imp for imp in all_imports(mods)
            if imp.importer.parts[0] == "protocols" and within(imp.target, LOWER_LAYERS)]


def is_math_module(mod: Module) -> bool:
    """Rule 2's modules: all of channel_server but its shells (process.py, __main__.py,
    shells/), controller/learners, controller/baselines, anything under a roles/ folder."""
    parts = mod.parts
    folders = parts[:-1]
    if "roles" in folders:
        return True
    if parts[0] == "channel_server":
        return parts[-1] not in ("process.py", "__main__.py") and "shells" not in folders
    return folders[:2] in (("controller", "learners"), ("controller", "baselines"))


def io_violations(mods: dict[str, Module]) -> list[Import]:
    """Rule 2: zmq or asyncio imported by a math or sans-IO module."""
    return [imp for imp in all_imports(mods)
            if is_math_module(imp.importer) and within(imp.target, IO_MODULES)]


def is_process_shell(mod: Module) -> bool:
    """Rule 3's modules: every ``process.py`` and everything under controller/roles/."""
    return mod.parts[-1] == "process.py" or mod.parts[:2] == ("controller", "roles")


def training_violations(mods: dict[str, Module]) -> list[Import]:
    """Rule 3: controller.training imported by a process shell."""
    return [imp for imp in all_imports(mods)
            if is_process_shell(imp.importer) and within(imp.target, (TRAINING,))]


def _owner(target: str, mods: dict[str, Module]) -> str | None:
    """The module of ours that ``target`` names (its longest known prefix), if any."""
    parts = target.split(".")
    for n in range(len(parts), 0, -1):
        name = ".".join(parts[:n])
        if name in mods:
            return name
    return None


def import_graph(mods: dict[str, Module]) -> dict[str, dict[str, Import]]:
    """{importer: {imported module of ours: the first statement importing it}}."""
    graph: dict[str, dict[str, Import]] = {name: {} for name in mods}
    for imp in all_imports(mods):
        dest = _owner(imp.target, mods)
        if dest is not None:
            graph[imp.importer.name].setdefault(dest, imp)
    return graph


def _components(graph: dict[str, dict[str, Import]]) -> list[list[str]]:
    """Strongly connected components (Tarjan, iterative), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    comp.append(top)
                    if top == node:
                        break
                out.append(sorted(comp))
    return out


def _shortest_path(graph: dict[str, dict[str, Import]], src: str, dst: str,
                   allowed: set[str]) -> list[str]:
    """Shortest path src -> dst inside ``allowed`` (breadth first; one exists in an SCC)."""
    prev: dict[str, str | None] = {src: None}
    queue = [src]
    for node in queue:
        if node == dst:
            break
        for nxt in sorted(graph[node]):
            if nxt in allowed and nxt not in prev:
                prev[nxt] = node
                queue.append(nxt)
    path = [dst]
    while (p := prev[path[-1]]) is not None:
        path.append(p)
    return path[::-1]


def import_cycles(mods: dict[str, Module]) -> list[list[Import]]:
    """Import cycles among our modules: for every import that closes a cycle, the shortest
    cycle through it, as its imports in order (a -> b, b -> ..., ... -> a); each once."""
    graph = import_graph(mods)
    cycles: dict[tuple[str, ...], list[Import]] = {}
    for comp in _components(graph):
        members = set(comp)
        for a in comp:
            for b in sorted(graph[a]):
                if b not in members:
                    continue
                ring = [a] if a == b else [a, *_shortest_path(graph, b, a, members)[:-1]]
                k = ring.index(min(ring))
                key = tuple(ring[k:] + ring[:k])
                if key not in cycles:
                    cycles[key] = [graph[x][y] for x, y in zip(key, key[1:] + key[:1],
                                                               strict=True)]
    return [cycles[k] for k in sorted(cycles)]


def describe_cycle(cycle: list[Import]) -> str:
    names = [imp.importer.name for imp in cycle]
    head = " -> ".join([*names, names[0]])
    return head + "".join(f"\n    {imp}" for imp in cycle)


def report(what: str, found: list[Import]) -> str:
    return f"{len(found)} {what}:\n" + "\n".join(f"  {imp}" for imp in found)


# --------------------------------------------------------------------------- the real packages


MODULES = load_modules()


def test_the_packages_are_found_and_parsed() -> None:
    tops = {m.parts[0] for m in MODULES.values()}
    assert tops == set(PACKAGES)
    assert {"protocols.codec", "channel_server.air", "node.policy", "controller.cli"} <= set(
        MODULES)
    assert all_imports(MODULES)  # the parser sees imports at all


def test_protocols_imports_nothing_of_the_layers_above() -> None:
    found = layer_violations(MODULES)
    assert not found, report("imports of channel_server/node/controller in protocols", found)


def test_math_and_role_modules_import_no_zmq_or_asyncio() -> None:
    found = io_violations(MODULES)
    assert not found, report("imports of zmq/asyncio in math or sans-IO role modules", found)


def test_process_shells_do_not_import_training_drivers() -> None:
    found = training_violations(MODULES)
    assert not found, report(f"imports of {TRAINING} in process shells", found)


def test_no_import_cycles() -> None:
    cycles = import_cycles(MODULES)
    assert not cycles, f"{len(cycles)} import cycle(s):\n" + "\n".join(
        describe_cycle(c) for c in cycles)


def test_no_test_module_imports_another() -> None:
    """Test files share code through tests/helpers.py and fixtures, never by importing a
    test module or a conftest."""
    tests = make_modules({p.relative_to(ROOT).as_posix(): p.read_text(encoding="utf-8")
                          for p in sorted((ROOT / "tests").rglob("*.py"))})
    found = [imp for imp in all_imports(tests)
             if imp.target.split(".")[0] == "tests"
             and any(part.startswith("test_") or part == "conftest"
                     for part in imp.target.split(".")[1:])]
    assert not found, report("imports of a test module or conftest", found)


# --------------------------------------------------------------------------- self-tests


SYNTHETIC = {
    "protocols/__init__.py": "",
    "protocols/codec.py": "import msgpack\nfrom protocols import errors\n",
    "protocols/errors.py": "class ProtocolError(Exception): ...\n",
    "protocols/bad.py": ("from typing import TYPE_CHECKING\n"
                         "if TYPE_CHECKING:\n    from controller.cli import main\n"
                         "def f():\n    from node.policy import x\n    return x\n"),
    "channel_server/__init__.py": "",
    "channel_server/air.py": "import numpy as np\nfrom . import rates\n",
    "channel_server/rates.py": "try:\n    import zmq\nexcept ImportError:\n    zmq = None\n",
    "channel_server/process.py": "import asyncio\nimport zmq.asyncio\nfrom . import air\n",
    "channel_server/__main__.py": "import asyncio\n",
    "channel_server/shells/air_shell.py": "import zmq\n",
    "channel_server/roles/process.py": "import asyncio\n",
    "node/__init__.py": "",
    "node/policy.py": "import torch\n",
    "node/process.py": "import zmq\nfrom controller.training.train import train\n",
    "node/roles/__init__.py": "",
    "node/roles/bs.py": "from ..policy import torch\nimport asyncio.queues\n",
    "controller/__init__.py": "",
    "controller/training/__init__.py": "",
    "controller/training/train.py": "import asyncio\nfrom controller.learners import a2c\n",
    "controller/learners/__init__.py": "",
    "controller/learners/a2c.py": "import zmq\nfrom controller.learners.b import C\n",
    "controller/learners/b.py": ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                 "    from controller.learners.a2c import A\n"
                                 "else:\n    from controller.learners import c\n"),
    "controller/learners/c.py": "def f():\n    from controller.learners import a2c\n",
    "controller/baselines/wmmse.py": "import numpy\n",
    "controller/roles/__init__.py": "",
    "controller/roles/cellular.py": "from controller import training\n",
    "controller/deploy/launcher.py": "import asyncio\nimport zmq\n",
    "controller/cli/__init__.py": "from controller.cli import helpers\n",
    "controller/cli/helpers.py": "import controller.cli\n",
}
"""Small modules with known violations of every rule (and things each rule must allow)."""


def flagged(found: list[Import]) -> set[tuple[str, str]]:
    return {(imp.importer.path, imp.target) for imp in found}


def test_parser_resolves_relative_imports_and_skips_type_checking() -> None:
    mods = make_modules(SYNTHETIC)
    got = {(imp.target, imp.line) for imp in imports(mods["node.roles.bs"], mods)}
    assert got == {("node.policy", 1), ("asyncio.queues", 2)}
    got = {imp.target for imp in imports(mods["channel_server.air"], mods)}
    assert got == {"numpy", "channel_server.rates"}
    # under TYPE_CHECKING: not counted; its else branch and a function body: counted
    assert {imp.target for imp in imports(mods["protocols.bad"], mods)} == {
        "typing", "node.policy"}
    assert {imp.target for imp in imports(mods["controller.learners.b"], mods)} == {
        "typing", "controller.learners.c"}


def test_layer_rule_can_fail() -> None:
    mods = make_modules(SYNTHETIC)
    assert flagged(layer_violations(mods)) == {("protocols/bad.py", "node.policy")}
    found = layer_violations(mods)
    assert "protocols/bad.py:5 (protocols.bad) imports node.policy" in str(found[0])


def test_io_rule_can_fail() -> None:
    mods = make_modules(SYNTHETIC)
    assert flagged(io_violations(mods)) == {
        ("channel_server/rates.py", "zmq"),  # a guarded import is still an import
        ("channel_server/roles/process.py", "asyncio"),  # roles: sans-IO, whatever the name
        ("node/roles/bs.py", "asyncio.queues"),
        ("controller/learners/a2c.py", "zmq"),
    }  # not: channel_server's process.py, __main__.py, shells/; training; deploy


def test_training_rule_can_fail() -> None:
    mods = make_modules(SYNTHETIC)
    assert flagged(training_violations(mods)) == {
        ("node/process.py", "controller.training.train"),
        ("controller/roles/cellular.py", "controller.training"),  # `from controller import`
    }


def test_cycle_rule_can_fail() -> None:
    mods = make_modules(SYNTHETIC)
    cycles = [[imp.importer.name for imp in c] for c in import_cycles(mods)]
    assert cycles == [
        ["controller.cli", "controller.cli.helpers"],
        # a2c -> b (module level), b -> c (TYPE_CHECKING's else), c -> a2c (in a function);
        # b -> a2c under TYPE_CHECKING makes no two-module cycle
        ["controller.learners.a2c", "controller.learners.b", "controller.learners.c"],
    ]
    text = describe_cycle(import_cycles(mods)[1])
    assert text.startswith("controller.learners.a2c -> controller.learners.b -> "
                           "controller.learners.c -> controller.learners.a2c")
    assert "controller/learners/c.py:2 (controller.learners.c) imports " in text


def test_rules_pass_on_clean_sources() -> None:
    clean = {p: s for p, s in SYNTHETIC.items()
             if p in ("protocols/codec.py", "protocols/errors.py", "channel_server/air.py",
                      "channel_server/process.py", "channel_server/shells/air_shell.py",
                      "controller/baselines/wmmse.py", "controller/deploy/launcher.py")}
    clean["channel_server/rates.py"] = "import numpy\n"
    mods = make_modules(clean)
    assert layer_violations(mods) == io_violations(mods) == training_violations(mods) == []
    assert import_cycles(mods) == []
