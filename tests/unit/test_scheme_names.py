"""Issue 11's rule as a test: each scheme is declared once, in the registry
(``node.schemes``), and no code outside the registry and the scheme modules compares scheme
names or keeps its own list of them.

Every module of ``controller``, ``node``, ``channel_server`` and ``protocols`` outside
``node/schemes/`` is parsed with ``ast`` (never imported). A string constant equal to a
registered scheme name (:data:`node.schemes.SCHEMES`, every kind) is a violation where it

* is compared: an operand of ``==``, ``!=``, ``in``, ``not in``, ``is``, ``is not``, or a
  ``case`` of a ``match``;
* sits in a tuple, list, set or dict literal (at any depth) that is compared, iterated
  (``for``, a comprehension) or kept under a name (assigned, annotated, returned): a
  hand-made list of schemes;
* is a dict key: a key of a dict literal, a subscript ``d["name"]`` (also ``Literal[...]``),
  the key of ``d.get``, ``d.pop`` or ``d.setdefault``;
* is a choice of ``click.Choice(...)`` or the ``default`` of a click option or argument.

Anywhere else a name is prose or a label (docstrings, help texts, messages, f-strings,
the arguments of a call such as ``rng_for(seed, "evaluate", "random")``) and is allowed.
A checker function finds the violations; the real packages must have none, and a
self-test on small synthetic sources shows that every rule can fail and what it allows.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath

from node.schemes import SCHEMES
from tests.helpers import ROOT

PACKAGES = ("controller", "node", "channel_server", "protocols")
REGISTRY = "node/schemes/"
"""The registry and the scheme modules: the one place that names schemes."""
CONTAINERS = (ast.Tuple, ast.List, ast.Set)
KEEPERS = (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.Return, ast.NamedExpr)
"""Statements that keep a literal under a name (or hand it back) for later use."""
COMPARE_OPS = (ast.Eq, ast.NotEq, ast.In, ast.NotIn, ast.Is, ast.IsNot)
KEY_METHODS = ("get", "pop", "setdefault")


@dataclass(frozen=True)
class Violation:
    """One scheme name outside the registry, in a position the rule forbids."""

    path: str
    """File, relative to the repository, POSIX separators."""
    line: int
    name: str
    """The scheme name."""
    why: str
    """Its position: compared, in an iterated literal, a dict key, ..."""

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: scheme name {self.name!r} {self.why}"


def scheme_names() -> frozenset[str]:
    """Every registered scheme's name, all kinds."""
    return frozenset(s.name for s in SCHEMES)


def sources(packages: Iterable[str] = PACKAGES) -> dict[str, str]:
    """{relative path: text} of every module of ``packages`` outside the registry."""
    out = {}
    for pkg in packages:
        for f in sorted((ROOT / pkg).rglob("*.py")):
            rel = f.relative_to(ROOT).as_posix()
            if "__pycache__" not in f.parts and not rel.startswith(REGISTRY):
                out[rel] = f.read_text(encoding="utf-8")
    return out


def _is_click(func: ast.expr, attrs: tuple[str, ...]) -> bool:
    """``click.<attr>`` (or a bare ``<attr>`` imported from click) for one of ``attrs``."""
    if isinstance(func, ast.Attribute):
        return func.attr in attrs and isinstance(func.value, ast.Name) and func.value.id == "click"
    return isinstance(func, ast.Name) and func.id in attrs


def _is_literal_type(node: ast.expr) -> bool:
    return ((isinstance(node, ast.Name) and node.id == "Literal")
            or (isinstance(node, ast.Attribute) and node.attr == "Literal"))


def _position(const: ast.Constant, parents: dict[ast.AST, ast.AST]) -> str | None:
    """Why ``const`` (a scheme name) is forbidden where it stands; None where it is allowed."""
    child: ast.AST = const
    parent = parents.get(child)
    literal = False  # the constant is an element of a container literal
    while (isinstance(parent, CONTAINERS)
           or (isinstance(parent, ast.Dict) and child in parent.values)):
        literal = True
        child, parent = parent, parents.get(parent)
    within = "in a literal " if literal else ""
    if isinstance(parent, ast.Compare) and any(isinstance(op, COMPARE_OPS) for op in parent.ops):
        return f"{within}compared"
    if isinstance(parent, ast.MatchValue):
        return "matched in a case"
    if isinstance(parent, ast.Dict) and child in parent.keys:
        return "as a dict key"
    if (isinstance(parent, ast.For | ast.AsyncFor | ast.comprehension)
            and child is parent.iter):
        return f"{within}iterated"
    if isinstance(parent, ast.Subscript) and child is parent.slice:
        return "in a Literal type" if _is_literal_type(parent.value) else "as a subscript key"
    if (isinstance(parent, ast.Assign) and len(parent.targets) == 1
            and isinstance(parent.targets[0], ast.Name) and parent.targets[0].id == "__all__"):
        return None  # a module's exported identifiers (a function may share a scheme's name)
    if literal and isinstance(parent, KEEPERS):
        return "in a literal kept as a list of schemes"
    if isinstance(parent, ast.keyword):
        call = parents.get(parent)
        if (parent.arg == "default" and isinstance(call, ast.Call)
                and _is_click(call.func, ("option", "argument"))):
            return "as the default of a click option"
    if isinstance(parent, ast.Call):
        if _is_click(parent.func, ("Choice",)):
            return "as a click.Choice choice"
        if (isinstance(parent.func, ast.Attribute) and parent.func.attr in KEY_METHODS
                and parent.args and parent.args[0] is child):
            return f"as the key of .{parent.func.attr}()"
    return None


def violations(files: dict[str, str], names: frozenset[str]) -> list[Violation]:
    """Every forbidden use of a name of ``names`` in ``files`` ({path: source})."""
    found = []
    for path, source in files.items():
        tree = ast.parse(source, filename=path)
        parents = {child: node for node in ast.walk(tree)
                   for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and node.value in names and (why := _position(node, parents))):
                found.append(Violation(path, node.lineno, node.value, why))
    return sorted(found, key=lambda v: (v.path, v.line, v.name))


def _report(found: list[Violation]) -> str:
    return ("scheme names outside node/schemes/ (ask the registry: SCHEMES.get / for_kind, "
            "a Scheme property or option):\n" + "\n".join(f"  {v}" for v in found))


# --------------------------------------------------------------------------- the real tree


def test_the_registry_names_schemes_of_every_kind() -> None:
    names = scheme_names()
    assert {"round-robin", "wmmse", "marl-dqn"} <= names
    assert {s.kind for s in SCHEMES} >= {"cellular", "v2x"}


def test_no_scheme_names_outside_the_registry() -> None:
    files = sources()
    assert any(PurePosixPath(p).parts[0] == "controller" for p in files)
    assert not any(p.startswith(REGISTRY) for p in files)
    found = violations(files, scheme_names())
    assert found == [], _report(found)


# --------------------------------------------------------------------------- self-test


NAMES = frozenset({"alpha", "beta-2", "gamma"})
"""The synthetic registry's scheme names."""

BAD = '''\
import click
from typing import Literal

ORDER = ("alpha", "beta-2")
Kind = Literal["alpha", "gamma"]
TIMES = {"alpha": 1.0}


def f(scheme, table, rows):
    if scheme == "alpha":
        return 1
    if scheme in ("beta-2", "other"):
        return 2
    if "gamma" != scheme:
        pass
    for s in ["alpha", "x"]:
        print(s)
    xs = [r for r in ("gamma",)]
    table["beta-2"] = 3
    y = rows.get("alpha", 0)
    match scheme:
        case "gamma":
            pass
    return ["alpha", "gamma"]


@click.option("--scheme", type=click.Choice(["alpha", "gamma"]), default="alpha")
@click.option("--other", default="beta-2")
def cmd(scheme, other):
    pass
'''
"""One violation of every kind, at known lines."""

GOOD = '''\
"""The alpha scheme: a docstring may name it."""
import click

from node.schemes import SCHEMES


def g(scheme, rng_for, seed, table):
    """``gamma`` and beta-2 in prose."""
    rng = rng_for(seed, "evaluate", "alpha")
    label = f"{scheme} vs alpha"
    spec = SCHEMES.get("cellular", "beta-2")
    other = scheme or "gamma"
    print("alpha", label, spec, other, rng)
    if spec.exchange == "central" and scheme in table:
        return "alphabet" == scheme
    return None


@click.option("--scheme", help="alpha, beta-2 or gamma", default=None)
def cmd(scheme):
    pass
'''
"""Uses the rule allows: prose, labels, call arguments, a registry lookup, other strings."""


def test_checker_flags_every_forbidden_position() -> None:
    found = violations({"controller/bad.py": BAD}, NAMES)
    got = {(v.line, v.name, v.why) for v in found}
    assert got == {
        (4, "alpha", "in a literal kept as a list of schemes"),
        (4, "beta-2", "in a literal kept as a list of schemes"),
        (5, "alpha", "in a Literal type"),
        (5, "gamma", "in a Literal type"),
        (6, "alpha", "as a dict key"),
        (10, "alpha", "compared"),
        (12, "beta-2", "in a literal compared"),
        (14, "gamma", "compared"),
        (16, "alpha", "in a literal iterated"),
        (18, "gamma", "in a literal iterated"),
        (19, "beta-2", "as a subscript key"),
        (20, "alpha", "as the key of .get()"),
        (22, "gamma", "matched in a case"),
        (24, "alpha", "in a literal kept as a list of schemes"),
        (24, "gamma", "in a literal kept as a list of schemes"),
        (27, "alpha", "as a click.Choice choice"),
        (27, "gamma", "as a click.Choice choice"),
        (27, "alpha", "as the default of a click option"),
        (28, "beta-2", "as the default of a click option"),
    }
    assert str(found[0]) == ("controller/bad.py:4: scheme name 'alpha' in a literal kept as "
                             "a list of schemes")
    assert "controller/bad.py:10: scheme name 'alpha' compared" in _report(found)


def test_checker_allows_prose_labels_and_registry_lookups() -> None:
    assert violations({"controller/good.py": GOOD}, NAMES) == []


def test_sources_leave_out_the_registry() -> None:
    files = sources(("node",))
    assert "node/agent.py" in files
    assert not [p for p in files if p.startswith(REGISTRY)]
