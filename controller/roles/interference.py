"""The controller's part of a K-user interference channel run: it records every slot's
outcome and, for central schemes (the MLP, WMMSE, FP, the optimum), decides every link's
power once every active link has uploaded what its receiver measured. GNN weights reach the
links as the common ``weights`` message before the first slot (the node asks for the
snapshot).

ALCOR over a central URA (paper 004): with ``alcor = "central"`` the controller keeps every
link's multiplier (:class:`node.alcor_online.OnlineAlcor`), draws the slot's user selection
and runs the URA among the links it switched on; with ``alcor = "distributed"`` each link
keeps its own and says in its upload whether it is on. Either way the URA sees ``H_xi``
(the gains of the links off zeroed) and the links off get 0 W. An ALCOR slot is decided once
the outcome of the slot before is recorded (the centralized multipliers step on outcomes:
the same slots use the same activation probabilities on both runners, however messages
interleave)."""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

import numpy as np

from channel_server.interference import IcScenario
from controller.baselines.ic import IcCentral
from controller.evaluation.ic_run import IcRecorder
from controller.roles.external import EXTERNAL, ExternalSlots
from node.alcor_online import OnlineAlcor
from node.schemes import SCHEMES
from protocols.ic_messages import IcOutcome, IcUpload
from protocols.messages import Decision, Message
from protocols.names import index_of
from protocols.role import Outbox
from protocols.validate import Rejected, check_array, check_indices, check_number

if TYPE_CHECKING:
    from controller.roles.controller import ControllerRole


class IcPart:
    snapshot: tuple[int, dict[str, np.ndarray]] | None = None
    pause_every = 0
    external: ExternalSlots | None = None
    """Scheme ``external-learner``: a learner outside the testbed decides (set by
    :mod:`controller.envs.network`)."""

    def __init__(self, ctl: ControllerRole, scenario: IcScenario,
                 weights: dict[str, np.ndarray] | None) -> None:
        self.ctl = ctl
        self.scenario = scenario
        self.spec = SCHEMES.get(ctl.kind.name, ctl.scheme)
        self.recorder = IcRecorder(scenario, ctl.scheme, ctl.runner, ctl.seed, ctl.slots)
        if ctl.out_dir is not None:
            self.recorder.stream(ctl.out_dir)
        self.central = (IcCentral(self.spec, scenario, ctl.seed, weights)
                        if self.spec.exchange == "central" else None)
        if weights is not None and self.central is None:
            self.snapshot = (1, weights)
        self.uploads: dict[int, dict[int, tuple[np.ndarray, float, bool]]] = {}
        self.decided: set[int] = set()
        self.compute_s: list[float] = []
        self.alcor_mode = self.spec.options.get("alcor")
        self.alcor = (OnlineAlcor(scenario.alcor, list(range(scenario.k)), ctl.seed)
                      if self.alcor_mode == "central" else None)
        self.usv: dict[int, np.ndarray] = {}
        """Central ALCOR: each decided slot's user selection, until its outcome."""

    # ----------------------------------------------------------------- the part

    def after_start(self, name: str, out: Outbox) -> None:
        pass

    def after_weights(self, name: str, slot: int, out: Outbox) -> None:
        pass

    def busy(self) -> bool:
        return False

    def weights_for(self, name: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return arrays

    def on_message(self, msg: Message, now: float, out: Outbox) -> bool:
        if isinstance(msg, IcOutcome):
            self.check_outcome(msg)
            self.recorder.add(msg, self.usv.pop(msg.slot, None))
            if self.alcor is not None:
                self.alcor.add(msg.slot, msg.u_min, msg.rates)
            self.ctl.outcome_recorded(msg.lost)
            if self.external is not None:
                self.external.learner.outcome(msg)
            if self.alcor_mode is not None:
                self.try_decide(out)
        elif isinstance(msg, IcUpload) and self.central is not None:
            self.on_upload(msg, out)
        else:
            return False
        return True

    def check_outcome(self, msg: IcOutcome) -> None:
        """The next slot in order, every array of the scenario's shape and range."""
        if msg.slot != self.recorder.done:
            raise Rejected(f"slot {msg.slot} out of order (expected {self.recorder.done})")
        k, pmax = self.scenario.k, self.scenario.radio.pmax_w
        check_array(msg.powers, "powers", (k,), 0.0, pmax)
        check_array(msg.rates, "rates", (k,), 0.0)
        check_array(msg.missed, "missed", (k,), 0, 1)
        check_array(msg.missing, "missing", (k,), 0, k)
        check_array(msg.active, "active", (k,), 0, 1)
        check_array(msg.u_min, "u_min", (k,), 0.0)
        check_number(msg.reference_rate, "reference rate", 0.0)
        if not isinstance(msg.decision_latency_s, np.ndarray) or np.isnan(
                msg.decision_latency_s).any() or msg.decision_latency_s.shape != (k,):
            raise Rejected("decision latency is not (K,) numbers")
        check_indices(msg.lost, "lost", k)

    def on_upload(self, msg: IcUpload, out: Outbox) -> None:
        """Collect one slot's uploads; decide once every active link has uploaded."""
        k = self.scenario.k
        if not self.recorder.done <= msg.slot < self.ctl.slots:
            raise Rejected(f"slot {msg.slot} outside [{self.recorder.done}, {self.ctl.slots})")
        g = check_array(msg.gains, "gains", (k,), 0.0)
        check_number(msg.chain_latency_s, "chain latency", 0.0, allow_inf=True)
        if msg.slot in self.decided:
            raise Rejected(f"a second upload for slot {msg.slot}")
        got = self.uploads.setdefault(msg.slot, {})
        got[index_of(msg.sender)] = (np.asarray(g, dtype=np.float64), msg.chain_latency_s,
                                     bool(msg.active))
        self.try_decide(out)

    def try_decide(self, out: Outbox) -> None:
        """Decide every slot, in order, whose uploads are in (an ALCOR slot: and whose
        previous outcome is recorded)."""
        while self.uploads:
            slot = min(self.uploads)
            got = self.uploads[slot]
            if not self.ctl.active <= set(got):
                return
            if self.alcor_mode is not None and self.recorder.done < slot:
                return
            self.decide(slot, got, out)
            del self.uploads[slot]
            self.decided.add(slot)

    def decide(self, slot: int, got: dict[int, tuple[np.ndarray, float, bool]],
               out: Outbox) -> None:
        assert self.central is not None
        k = self.scenario.k
        gains = np.zeros((k, k))  # a silent link's column stays zero: it transmits nothing
        for i, (col, _, _) in got.items():
            gains[:, i] = col
        on = np.array([got[i][2] if i in got else False for i in range(k)])
        if self.alcor is not None:
            on = self.alcor.draw() & on
            self.usv[slot] = on.astype(np.int64)
        if self.alcor_mode is not None and not on.all():
            gains = gains * on[:, None] * on[None, :]  # H_xi: the links off do not exist
        if self.external is not None:
            self.external.hand(slot, got, gains, self.ctl.host.now(), out)
            return
        powers, compute_s = self.central.decide(gains)
        powers = np.where(on, powers, 0.0) if self.alcor_mode is not None else powers
        timing = self.scenario.timing
        self.send_decision(slot, got, powers,
                           compute_s if timing.compute_model == "measured" else timing.compute_s,
                           out)

    def send_decision(self, slot: int, got: dict[int, tuple[np.ndarray, float, bool]],
                      powers: np.ndarray, compute_s: float, out: Outbox) -> None:
        """Every uploading link's power of ``powers`` ``(K,)``, ready ``compute_s`` after the
        last upload arrived (the uplink latency is added on receipt)."""
        self.compute_s.append(compute_s)
        ready = max(a for _, a, _ in got.values()) + compute_s
        name = self.ctl.kind.node_name
        for i in sorted(got):
            out.send(name(i), Decision, slot=slot, chain_latency_s=ready,
                     powers=powers[i:i + 1])

    def on_timer(self, key: Hashable, now: float, out: Outbox) -> None:
        """Scheme ``external-learner``: send the powers the learner has given, in slot order;
        look again later for the rest."""
        assert key == EXTERNAL and self.external is not None
        for slot, got, powers in self.external.decided(now, out):
            self.send_decision(slot, got, np.asarray(powers, dtype=np.float64),
                               self.scenario.timing.compute_s, out)

    # ----------------------------------------------------------------- results

    def live_metrics(self) -> dict[str, Any]:
        rates = self.recorder.sum_rates()[-100:]
        return {"slots_done": self.recorder.done,
                "sum_rate_bps_hz": float(rates.mean()) if rates.size else None}

    def extra_summary(self) -> dict[str, Any]:
        c = np.asarray(self.compute_s)
        extra: dict[str, Any] = {
            "central_compute_ms_mean": float(c.mean() * 1e3) if c.size else None}
        if self.alcor is not None:
            extra["alcor_lambda"] = [[slot, lam] for slot, lam in self.alcor.history]
        return extra

    def history(self) -> list[dict[str, float]]:
        return []

    def final_weights(self) -> None:
        return None
