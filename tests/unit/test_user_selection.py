"""Paper 004's diverse training of a cellular policy (``rrmbed train --user-selection``):
the users off are zeroed from what the policy sees and get 0 W, checked against an
independent computation; training with it resumes exactly from a checkpoint."""

from __future__ import annotations

import numpy as np
import pytest

from channel_server.air import Air
from channel_server.config import load_scenario
from channel_server.rates import sum_rate_bps_hz
from controller.training.rollout import play, random_selection
from controller.training.train import SeedTrainer, TrainConfig, policy_config_for
from node.observation import obs_central
from node.policy import seeded_policy
from node.policy_spec import power_fraction
from protocols.seeding import rng_for
from tests.helpers import SCENARIOS

SC = load_scenario(SCENARIOS / "3cell-k2.toml")


def test_selection_draws_a_fresh_kappa_per_episode() -> None:
    on = random_selection(rng_for(0, "t"), 20000, SC.radio)
    assert on.shape == (20000, 3, 2) and on.dtype == bool
    assert on.mean() == pytest.approx(0.5, abs=0.01)  # E[kappa] = 1/2
    # users of one episode share nothing: their correlation is ~0
    assert abs(np.corrcoef(on[:, 0, 0], on[:, 1, 1])[0, 1]) < 0.03


def test_users_off_are_unseen_and_silent() -> None:
    radio = SC.radio
    gains = Air(radio, 3, episodes=64).reset()
    on = random_selection(rng_for(1, "t"), 64, radio)
    policy = seeded_policy(policy_config_for("centralized", SC), 0)
    batch = play(policy, "centralized", gains, radio, rng_for(2, "t"), "mean", on)
    masked = gains.copy()
    for m in range(64):
        for c in range(3):
            for k in range(2):
                if not on[m, c, k]:
                    masked[m, :, k, c] = 0.0  # user (c, k) hears nothing
    assert np.array_equal(batch.obs, obs_central(masked, radio))
    frac = power_fraction(policy.act(obs_central(masked, radio), "mean"),
                          radio.action_map).reshape(64, 3, 2)
    want = sum_rate_bps_hz(masked, frac * on * radio.pmax_w, radio.noise_w)
    assert batch.sum_rate_bps_hz == pytest.approx(want, rel=1e-12)
    full = play(policy, "centralized", gains, radio, rng_for(2, "t"), "mean")
    assert not np.allclose(full.sum_rate_bps_hz, batch.sum_rate_bps_hz)


def test_training_with_selection_resumes_exactly() -> None:
    cfg = TrainConfig(algo="trpo", scheme="centralized", steps=60, episodes_per_iter=20,
                      user_selection=True)
    whole = SeedTrainer(SC, cfg, 4)
    for _ in range(3):
        whole.step()
    first = SeedTrainer(SC, cfg, 4)
    first.step()
    again = SeedTrainer(SC, cfg, 4)
    again.load_state(first.state())
    again.step()
    again.step()
    for a, b in zip(whole.policy.parameters(), again.policy.parameters(), strict=True):
        assert np.array_equal(a.detach().numpy(), b.detach().numpy())
    plain = SeedTrainer(SC, TrainConfig(algo="trpo", scheme="centralized", steps=60,
                                        episodes_per_iter=20), 4)
    with pytest.raises(ValueError, match="user selection"):
        plain.load_state(first.state())
