"""Learner state as named numpy arrays, for checkpoints (no pickle): torch modules, Adam and
RMSProp state, PCG64 generators, the policy-gradient learners (TRPO, A2C) and the DQN
(networks, targets, optimizers, replay). The local training driver
(:mod:`controller.training.train`) and the network trainers
(:mod:`controller.learners.experience`, :mod:`controller.learners.v2x_experience`) save and
restore through these, so a restored learner continues exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import torch

# --------------------------------------------------------------------------- generators


def rng_state(rng: np.random.Generator) -> npt.NDArray[np.uint64]:
    """A PCG64 generator's state as six uint64 (128-bit state and increment split in two)."""
    st = rng.bit_generator.state
    if st["bit_generator"] != "PCG64":
        raise ValueError(f"only PCG64 generators are checkpointed, got {st['bit_generator']}")
    mask = (1 << 64) - 1
    s, inc = int(st["state"]["state"]), int(st["state"]["inc"])
    vals = [s >> 64, s & mask, inc >> 64, inc & mask, int(st["has_uint32"]),
            int(st["uinteger"])]
    return np.array(vals, dtype=np.uint64)


def set_rng_state(rng: np.random.Generator, arr: npt.NDArray[np.uint64]) -> None:
    v = [int(x) for x in arr]
    rng.bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": (v[0] << 64) | v[1], "inc": (v[2] << 64) | v[3]},
        "has_uint32": v[4],
        "uinteger": v[5],
    }


# --------------------------------------------------------------------------- modules, optimizers


def module_arrays(module: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def load_module(module: torch.nn.Module, arrays: dict[str, np.ndarray]) -> None:
    module.load_state_dict({k: torch.as_tensor(v) for k, v in arrays.items()})


def prefixed(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The entries of ``arrays`` under ``prefix``, without it."""
    return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}


def adam_arrays(opt: torch.optim.Optimizer, prefix: str) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for idx, st in opt.state_dict()["state"].items():
        for name, val in st.items():
            out[f"{prefix}{idx}.{name}"] = torch.as_tensor(val).detach().cpu().numpy().copy()
    return out


def load_adam(opt: torch.optim.Optimizer, arrays: dict[str, np.ndarray], prefix: str) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, val in prefixed(arrays, prefix).items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = torch.as_tensor(val).clone()
    opt.load_state_dict({"state": state, "param_groups": opt.state_dict()["param_groups"]})


def optimizer_arrays(learner: Any) -> dict[str, np.ndarray]:
    """A TRPO learner's value-net Adam, or an A2C learner's Adam or RMSProp mean squares."""
    value_opt = getattr(learner, "value_opt", None)
    if value_opt is not None:
        return adam_arrays(value_opt, "opt.adam.")
    if learner.adam is not None:
        return adam_arrays(learner.adam, "opt.adam.")
    return {f"opt.ms.{i}": m.detach().cpu().numpy().copy()
            for i, m in enumerate(learner.mean_square)}


def load_optimizer(learner: Any, arrays: dict[str, np.ndarray]) -> None:
    value_opt = getattr(learner, "value_opt", None)
    if value_opt is not None:
        load_adam(value_opt, arrays, "opt.adam.")
    elif learner.adam is not None:
        load_adam(learner.adam, arrays, "opt.adam.")
    else:
        with torch.no_grad():
            for i, m in enumerate(learner.mean_square):
                m.copy_(torch.as_tensor(arrays[f"opt.ms.{i}"]))


# --------------------------------------------------------------------------- learners


def gaussian_learner_state(learner: Any) -> dict[str, np.ndarray]:
    """A TRPO or A2C learner: policy, value net, optimizer, its generator (TRPO's minibatch
    orders; A2C keeps none) and its iteration count."""
    out = {f"policy.{k}": v for k, v in module_arrays(learner.policy).items()}
    out.update({f"value.{k}": v for k, v in module_arrays(learner.value).items()})
    out.update(optimizer_arrays(learner))
    rng = getattr(learner, "rng", None)
    if rng is not None:
        out["rng.learner"] = rng_state(rng)
    out["learner.iterations"] = np.array(learner.iterations, dtype=np.int64)
    return out


def load_gaussian_learner(learner: Any, arrays: dict[str, np.ndarray]) -> None:
    load_module(learner.policy, prefixed(arrays, "policy."))
    load_module(learner.value, prefixed(arrays, "value."))
    load_optimizer(learner, arrays)
    rng = getattr(learner, "rng", None)
    if rng is not None:
        set_rng_state(rng, arrays["rng.learner"])
    learner.iterations = int(arrays["learner.iterations"])


def _replay_buffers(dqn: Any) -> list[Any]:
    return list(getattr(dqn.replay, "buffers", [dqn.replay]))


def dqn_state(dqn: Any) -> dict[str, np.ndarray]:
    """A :class:`controller.learners.dqn.Dqn`: online and target networks, Adam states,
    the replay (every buffer's rows, cursor, size and count), its generator and counters."""
    out: dict[str, np.ndarray] = {}
    for i, (q, t, opt) in enumerate(zip(dqn.online, dqn.target, dqn.optimizers, strict=True)):
        out.update({f"dqn.online{i}.{k}": v for k, v in module_arrays(q).items()})
        out.update({f"dqn.target{i}.{k}": v for k, v in module_arrays(t).items()})
        out.update(adam_arrays(opt, f"dqn.adam{i}."))
    for j, buf in enumerate(_replay_buffers(dqn)):
        # the rows where they lie (sampling draws positions), the cursor and counts
        out.update({f"replay{j}.{name}": a[:buf.size] for name, a in buf.data.items()})
        out[f"replay{j}.counters"] = np.array([buf.cursor, buf.added], dtype=np.int64)
    out["rng.dqn"] = rng_state(dqn.rng)
    out["dqn.counters"] = np.array([dqn.updates, dqn.version], dtype=np.int64)
    return out


def load_dqn(dqn: Any, arrays: dict[str, np.ndarray]) -> None:
    for i, (q, t, opt) in enumerate(zip(dqn.online, dqn.target, dqn.optimizers, strict=True)):
        load_module(q, prefixed(arrays, f"dqn.online{i}."))
        load_module(t, prefixed(arrays, f"dqn.target{i}."))
        load_adam(opt, arrays, f"dqn.adam{i}.")
    for j, buf in enumerate(_replay_buffers(dqn)):
        rows = prefixed(arrays, f"replay{j}.")
        n = len(rows["obs"])
        if n > buf.capacity:
            raise ValueError(f"checkpoint replay holds {n} rows, capacity {buf.capacity}")
        for name, a in buf.data.items():
            a[:n] = rows[name]
        buf.size = n
        buf.cursor, buf.added = (int(x) for x in rows["counters"])
    set_rng_state(dqn.rng, arrays["rng.dqn"])
    dqn.updates, dqn.version = (int(x) for x in arrays["dqn.counters"])
