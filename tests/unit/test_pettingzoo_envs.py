"""The PettingZoo environments of every scenario kind (controller.envs).

Every built-in kind must name an environment (``ScenarioKind.env``) that passes PettingZoo's
own conformance tests (``parallel_api_test``, ``parallel_seed_test``; the cellular
round-robin AEC game ``api_test``, ``seed_test`` and ``state_test``), and its rewards must
equal an independent computation from the kind's air with the same seed. A built-in kind
added without an environment, or without a small scenario below, fails here. (Plug-in kinds
that other tests register, e.g. tests/integration/test_plugins.py's two-link channel, are
third-party and may have none.)
"""

from __future__ import annotations

import ast
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from pettingzoo import AECEnv, ParallelEnv
from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test, seed_test
from pettingzoo.test.state_test import state_test

from channel_server.air import Air
from channel_server.d2d import D2dWorld, db_to_linear
from channel_server.interference import IcChannel
from channel_server.kinds import KINDS, Resolved, resolve
from channel_server.rates import csi_slice, sum_rate_bps_hz
from channel_server.roles.cellular import CellularAir
from channel_server.v2x_air import V2xAir
from controller.envs import make_env
from node.mpgnn import phi
from node.observation import obs_full
from tests.helpers import ROOT, python_example, readme_section

SMALL: dict[str, tuple[str, dict[str, object]]] = {
    "cellular": ("scenarios/3cell-k2.toml", {}),
    "v2x": ("scenarios/v2x-manhattan.toml", {"traffic.deadline_s": 0.005}),  # T = 5 slots
    "d2d-underlay": ("scenarios/d2d-n10.toml", {"radio.n_pairs": 4, "radio.n_rb": 3}),
    "interference": ("scenarios/ic-gauss-k10.toml", {"radio.n_links": 4}),
}
"""A small scenario of every built-in kind."""
CYCLES = 6
"""Slots per episode in the conformance tests (V2X's deadline, 5 slots, comes first)."""
BUILTIN = [k for k in KINDS.names()
           if type(KINDS.get(k)).__module__.startswith("channel_server.kinds.")]


def small(kind: str) -> Resolved:
    if kind not in SMALL:
        pytest.fail(f"built-in kind {kind!r} has no small scenario in this test (and maybe no "
                    "environment: ScenarioKind.env)")
    path, overrides = SMALL[kind]
    return resolve(ROOT / path, overrides)


def test_the_builtin_kinds_are_found() -> None:
    assert {"cellular", "v2x", "d2d-underlay", "interference"} <= set(BUILTIN)


@pytest.mark.parametrize("kind", BUILTIN)
def test_every_kind_passes_pettingzoo_parallel_tests(kind: str) -> None:
    assert KINDS.get(kind).env is not None, f"kind {kind!r} names no environment"
    r = small(kind)
    env = make_env(r, seed=1)
    assert isinstance(env, ParallelEnv)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PettingZoo's warnings are failures here
        parallel_api_test(env, num_cycles=CYCLES)
        parallel_seed_test(lambda: make_env(r, max_cycles=CYCLES), num_cycles=CYCLES)
    env.reset(seed=2)
    assert env.state_space.contains(env.state())
    for a in env.possible_agents:
        assert env.observation_space(a) is env.observation_space(a)
        assert env.action_space(a) is env.action_space(a)
    aec = make_env(r, api="aec", max_cycles=3)
    assert isinstance(aec, AECEnv)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # normalized dB gains and SNR decades are unbounded: their Box bounds are infinite
        warnings.filterwarnings("ignore", "Agent's m.* observation space value is .*infinity")
        api_test(aec, num_cycles=4)


def test_cellular_round_robin_passes_pettingzoo_aec_tests() -> None:
    r = small("cellular")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        api_test(make_env(r, api="aec", max_cycles=4), num_cycles=6)
        seed_test(lambda: make_env(r, api="aec", max_cycles=4), num_cycles=6)
        state_test(make_env(r, api="aec", max_cycles=4), make_env(r, max_cycles=4), 4)


def test_episodes_after_a_seeded_reset_repeat() -> None:
    """Unseeded resets after a seeded one replay the same episodes, in every kind."""
    for kind in BUILTIN:
        r = small(kind)
        runs = []
        for _ in range(2):
            env = make_env(r, seed=5, max_cycles=2)
            env.reset(seed=9)
            for a in env.possible_agents:
                env.action_space(a).seed(0)
            seen = []
            for _ in range(3):
                obs, _ = env.reset()
                while env.agents:
                    obs, rew, *_ = env.step({a: env.action_space(a).sample() for a in env.agents})
                    seen.append((obs, rew))
            runs.append(seen)
        for (o1, r1), (o2, r2) in zip(*runs, strict=True):
            assert r1 == r2
            assert all(np.array_equal(o1[a], o2[a]) for a in o1), kind


# --------------------------------------------------------------------------- numbers


def test_cellular_full_rewards_are_the_sum_rate_of_the_air() -> None:
    r = small("cellular")
    radio = r.scenario.radio
    env = make_env(r, max_cycles=3)
    obs, _ = env.reset(seed=3)
    air = Air(radio, 3)
    gains = air.reset()[0]
    rng = np.random.default_rng(0)
    for _episode in range(2):
        for _ in range(3):
            for b, a in enumerate(env.possible_agents):
                assert np.array_equal(obs[a], obs_full(csi_slice(gains, b), b, radio)
                                      .astype(np.float32))
            frac = rng.uniform(0.0, 1.0, (radio.n_cells, radio.users_per_cell))
            obs, rew, _, trunc, info = env.step(
                {a: frac[b].astype(np.float32) for b, a in enumerate(env.possible_agents)})
            played = frac.astype(np.float32).astype(np.float64)
            want = sum_rate_bps_hz(gains, played * radio.pmax_w, radio.noise_w)
            assert all(math.isclose(v, want, rel_tol=1e-12) for v in rew.values())
            assert info["bs_0"]["sum_rate_bps_hz"] == rew["bs_0"]
            gains = air.step()[0]
        assert all(trunc.values()) and env.agents == []
        obs, _ = env.reset()  # the air's next drop
        gains = air.reset()[0]


def test_cellular_round_robin_follows_the_air_order_and_shows_earlier_powers() -> None:
    r = small("cellular")
    s, radio = r.scenario, r.scenario.radio
    b_n, k_n = radio.n_cells, radio.users_per_cell
    seed, slots = 11, 5
    ref = CellularAir(s, seed, {})
    env = make_env(r, api="aec", max_cycles=slots)
    env.reset(seed=seed)
    rng = np.random.default_rng(1)
    for n in range(slots):
        order = ref.advance(n)
        gains = ref.gains
        prior = np.zeros((b_n, k_n))
        chosen = np.zeros(b_n)
        for t, b in enumerate(order):
            agent = env.agent_selection
            assert agent == f"bs_{b}", f"slot {n}: turn {t} is {agent}, the air says BS {b}"
            obs, reward, _, trunc, _ = env.last()
            assert obs[: k_n * b_n].tolist() == obs_full(csi_slice(gains, b), b, radio) \
                .astype(np.float32).tolist()
            earlier = obs[k_n * b_n: 2 * k_n * b_n].reshape(b_n, k_n)
            assert np.allclose(np.roll(earlier, b, axis=0), prior, atol=1e-7)
            assert np.array_equal(np.roll(obs[2 * k_n * b_n:], b), chosen)
            frac = rng.uniform(0.0, 1.0, k_n).astype(np.float32)
            env.step(frac)
            prior[b], chosen[b] = frac, 1.0
        want = float(sum_rate_bps_hz(gains, prior * radio.pmax_w, radio.noise_w))
        # the last BS's step gives every BS the slot's sum-rate
        assert all(math.isclose(v, want, rel_tol=1e-12) for v in env.rewards.values())
    assert all(env.truncations.values())


def test_v2x_rewards_are_the_air_reward_of_the_decoded_actions() -> None:
    r = small("v2x")
    s = r.scenario
    m = s.radio.n_rb
    env = make_env(r, max_cycles=100)
    env.reset(seed=4)
    air = V2xAir(s, 1, 4)
    rng = np.random.default_rng(2)
    terminated = {}
    while env.agents:
        acts = rng.integers(0, env.action_space("vehicle_0").n, env.max_num_agents)
        _, rew, terminated, trunc, _ = env.step(
            {a: int(acts[k]) for k, a in enumerate(env.possible_agents)})
        want = air.step((acts % m)[None], (acts // m)[None]).reward[0]
        assert all(v == want for v in rew.values())
        assert not any(trunc.values())
    assert all(terminated.values()) and air.done  # the deadline, T = 5 slots


def test_d2d_rewards_are_equations_5_to_7_per_pair() -> None:
    r = small("d2d-underlay")
    s = r.scenario
    radio, qos = s.radio, s.qos
    n_n, k_n = radio.n_pairs, radio.n_rb
    p_d = 10.0 ** ((radio.d2d_power_levels_dbm[0] - 30.0) / 10.0)
    p_b = 10.0 ** ((radio.bs_power_dbm - 30.0) / 10.0)
    noise = 10.0 ** ((radio.noise_dbm - 30.0) / 10.0)
    env = make_env(r, max_cycles=4)
    env.reset(seed=6)
    world = D2dWorld(s, 1, 6)
    rng = np.random.default_rng(3)
    for _ in range(4):
        g = world.gains()
        rb = rng.integers(0, k_n, n_n)
        rb[1] = rb[0]  # two pairs share an RB
        _, rew, *_ = env.step({f"pair_{i}": int(rb[i]) for i in range(n_n)})
        for n in range(n_n):
            k = rb[n]
            interference = p_b * g.br[0, n, k] + noise + sum(
                p_d * g.tr[0, i, n, k] for i in range(n_n) if i != n and rb[i] == k)
            sinr = p_d * g.tr[0, n, n, k] / interference
            cue = p_b * g.bc[0, k] / (sum(p_d * g.tc[0, i, k] for i in range(n_n)
                                          if rb[i] == k) + noise)
            want = (math.log2(1 + sinr) if cue >= db_to_linear(qos.cue_sinr_min_db)
                    else qos.negative_reward)
            assert math.isclose(rew[f"pair_{n}"], want, rel_tol=1e-9), n
        world.advance()


def test_interference_rewards_are_the_sum_rate_and_observations_local() -> None:
    r = small("interference")
    s = r.scenario
    radio, k = s.radio, s.k
    env = make_env(r, max_cycles=3)
    obs, _ = env.reset(seed=8)
    ch = IcChannel(s, 8)
    rng = np.random.default_rng(4)
    last = np.ones(k)
    for _ in range(3):
        g = ch.gains[0]
        f = phi(g, radio.pmax_w, radio.noise_w)
        for i in range(k):
            o = obs[f"link_{i}"]
            others = [(i + d) % k for d in range(1, k)]
            assert o[0] == np.float32(last[i]) and o[1] == np.float32(f[i, i])
            assert np.array_equal(o[2:k + 1], f[others, i].astype(np.float32))
            assert np.array_equal(o[k + 1:], f[i, others].astype(np.float32))  # complete graph
        frac = rng.uniform(0.0, 1.0, k)
        obs, rew, *_ = env.step({f"link_{i}": np.array([frac[i]], dtype=np.float32)
                                 for i in range(k)})
        p = frac.astype(np.float32).astype(np.float64) * radio.pmax_w
        want = sum(math.log2(1 + p[i] * g[i, i] / (sum(p[j] * g[j, i] for j in range(k)
                                                        if j != i) + radio.noise_w))
                   for i in range(k))
        assert all(math.isclose(v, want, rel_tol=1e-9) for v in rew.values())
        last = frac.astype(np.float32)
        ch.step()


# --------------------------------------------------------------------------- plumbing


def test_make_env_takes_a_path_a_resolved_or_a_scenario_with_its_kind() -> None:
    path = ROOT / SMALL["cellular"][0]
    r = resolve(path)
    assert make_env(path).possible_agents == ["bs_0", "bs_1", "bs_2"]
    assert make_env(str(path)).possible_agents == make_env(r).possible_agents
    assert make_env(r.scenario, kind="cellular").max_cycles == 100
    with pytest.raises(TypeError, match="needs its kind"):
        make_env(r.scenario)
    with pytest.raises(TypeError, match="unknown option"):
        make_env(r, episodes=3)
    with pytest.raises(ValueError, match="api"):
        make_env(r, api="vector")


def test_no_kind_env_module_imports_another() -> None:
    mods = {str(KINDS.get(k).env).partition(":")[0] for k in BUILTIN}
    for mod in mods:
        path = ROOT / (mod.replace(".", "/") + ".py")
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
        assert not names & (mods - {mod}), f"{path.name} imports {names & mods}"


def test_kind_files_hold_only_a_reference() -> None:
    for k in BUILTIN:
        ref = KINDS.get(k).env
        assert isinstance(ref, str) and ref.startswith("controller.envs."), k


def test_the_readme_example_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The python block of the README's "### PettingZoo" section, as a fresh clone runs it."""
    code = python_example(readme_section("PettingZoo"))
    monkeypatch.chdir(ROOT)
    exec(compile(code, "README.md:PettingZoo", "exec"), {})


def test_the_network_bridge_keeps_an_upload_that_overtook_the_outcome() -> None:
    """A node's upload of slot n + 1 (two hops from the air) may come before the air's
    outcome of slot n (one hop): the env gets each when it asks; an event of a slot already
    past is an error that names both."""
    from controller.envs.network import Bridge

    bridge = Bridge()
    bridge.observe(2, (0, np.ones(3)))
    bridge.events.put(("outcome", 1, "outcome-1"))
    bridge.events.put(("outcome", 0, "late"))
    assert bridge.wait("outcome", 1, 1.0, lambda: None) == "outcome-1"
    bs, obs = bridge.wait("slot", 2, 1.0, lambda: None)
    assert bs == 0 and np.array_equal(obs, np.ones(3))
    with pytest.raises(RuntimeError, match="expected the outcome of slot 2, got the outcome of 0"):
        bridge.wait("outcome", 2, 1.0, lambda: None)


def test_each_api_over_the_network_is_the_kinds_network_env(tmp_path: Path) -> None:
    """``runner="network"``: the cellular kind has a network env of its own for each game;
    another kind's ``api="aec"`` is PettingZoo's ``parallel_to_aec`` of its parallel network
    env (built here, not started: no process runs before ``reset``)."""
    from controller.envs.cellular_network import (
        CellularNetworkEnv,
        CellularRoundRobinNetworkEnv,
    )
    from controller.envs.interference_network import IcNetworkEnv

    s3, ic = ROOT / "scenarios/3cell-k2.toml", ROOT / "scenarios/ic-gauss-k10.toml"
    for path, api, cls in ((s3, "parallel", CellularNetworkEnv),
                           (s3, "aec", CellularRoundRobinNetworkEnv),
                           (ic, "parallel", IcNetworkEnv)):
        env = make_env(path, api=api, runner="network", out=tmp_path)
        assert type(env) is cls and env.episode is None, (path, api)
    wrapped = make_env(ic, api="aec", runner="network", out=tmp_path)
    assert isinstance(wrapped, AECEnv) and type(wrapped.unwrapped) is IcNetworkEnv
    with pytest.raises(ValueError, match="api must be one of parallel, aec"):
        make_env(s3, api="turns", runner="network", out=tmp_path)
