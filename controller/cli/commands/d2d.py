"""``rrmbed d2d``: D2D underlay spectrum sharing (paper 002) — train the actors.

Other modules add commands to the :data:`d2d` group by importing it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from controller.cli.common import (
    SchemeChoice,
    cli,
    console,
    execute,
    number_list,
    progress_bar,
    resolve_file,
)
from node.schemes import SCHEMES

F = TypeVar("F", bound=Callable[..., Any])


def learning_options(f: F) -> F:
    """``--gamma``, ``--actor-update`` and ``--entropy``: the learners' settings a command
    passes on as ``gamma``, ``actor_update``, ``entropy`` (:class:`MaacConfig`'s fields)."""
    for option in reversed((
        click.option("--gamma", type=click.FloatRange(0.0, 1.0, max_open=True), default=0.95,
                     show_default=True, help="Discount factor per slot of every learner "
                     "(the paper's 0.95; 0 makes each slot its own problem: the fading is "
                     "the same whatever a pair chose)."),
        click.option("--actor-update", type=click.Choice(["expected", "gumbel"]),
                     default="expected", show_default=True,
                     help="How MAAC / NAAC / IAC's actors follow their critics: the expected "
                          "Q over the pair's own actions with an entropy bonus, or MADDPG's "
                          "Gumbel-Softmax relaxation."),
        click.option("--entropy", type=click.FloatRange(0.0), default=0.3, show_default=True,
                     help="Weight of the policy's entropy in the expected update, reward "
                          "units per nat."),
    )):
        f = option(f)
    return f


@cli.group()
def d2d() -> None:
    """D2D underlay spectrum sharing (paper 002): MAAC and NAAC trained at the base station."""


@d2d.command("train")
@click.argument("scenario", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                default="scenarios/d2d-n10.toml")
@click.option("--scheme", type=SchemeChoice("d2d-underlay", lambda s: s.trainable),
              default=SCHEMES.default("d2d-underlay", "train"), show_default=True)
@click.option("--runner", type=click.Choice(["local", "network"]), default="local",
              show_default=True, help="local: one process, an update every slot; network: "
              "pair nodes upload their histories, the controller trains and broadcasts the "
              "actors every --broadcast-period slots.")
@click.option("--slots", type=click.IntRange(1), default=5000, show_default=True,
              help="Training slots, the random warm-up included.")
@click.option("--random-slots", type=click.IntRange(0), default=2000, show_default=True,
              help="Slots of random allocation before the actors act and updates start.")
@click.option("--neighbours", type=click.IntRange(1), default=3, show_default=True,
              help="lambda: the nearest pairs a NAAC critic sees.")
@click.option("--batch-size", type=click.IntRange(1), default=128, show_default=True)
@click.option("--actor-hidden", default="512,128", show_default=True,
              help="Actor hidden widths, comma-separated.")
@click.option("--critic-hidden", default="1024,512,256", show_default=True,
              help="Critic hidden widths, comma-separated.")
@learning_options
@click.option("--broadcast-period", type=click.IntRange(1), default=100, show_default=True,
              help="Network runner: slots between actor broadcasts (and updates).")
@click.option("--asynchronous", is_flag=True,
              help="Network runner: the pairs keep acting while their uploads travel; an "
                   "update uses the uploads that have arrived (in emulated time) and its "
                   "actors go live once the controller -> pair latency has passed: backhaul "
                   "latency makes stale actors. Default: the air waits for every upload at "
                   "each broadcast.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="The run's seed: the drop, the fading, the learner (evaluate with the same "
                   "seed to act on the drop the actors trained on).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Scenario overrides, e.g. --set radio.n_pairs=20.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path))
def d2d_train(scenario: Path, scheme: str, runner: str, slots: int, random_slots: int,
              neighbours: int, batch_size: int, actor_hidden: str, critic_hidden: str,
              gamma: float, actor_update: str, entropy: float, broadcast_period: int,
              asynchronous: bool, seed: int, sets: tuple[str, ...],
              out: Path | None) -> None:
    """Train SCHEME's actors (MAAC or NAAC); writes OUT/weights.npz (the target actors, for
    `rrmbed run --scheme SCHEME --weights`) and OUT/training.csv."""
    from controller.learners.maac import MaacConfig

    resolved = resolve_file(scenario, sets)
    if resolved.kind.name != "d2d-underlay":
        raise click.ClickException(f"{scenario}: a {resolved.kind.name} scenario; this "
                                   "command takes a d2d-underlay one")
    sc = resolved.scenario
    if asynchronous and runner != "network":
        raise click.BadParameter("asynchronous training is the network runner's (the local "
                                 "runner has no backhaul)", param_hint="--asynchronous")
    if asynchronous:
        from controller.roles.d2d import deployment_lag

        try:
            deployment_lag(sc, resolved.kind.node_names(sc), broadcast_period)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--broadcast-period") from e

    maac = MaacConfig(neighbours=neighbours, batch_size=batch_size,
                      actor_hidden=number_list(actor_hidden, "--actor-hidden", minimum=1),
                      critic_hidden=number_list(critic_hidden, "--critic-hidden", minimum=1),
                      learning_starts=max(random_slots, 1), gamma=gamma,
                      actor_update=actor_update, entropy=entropy)  # type: ignore[arg-type]
    out = out or Path("runs") / f"d2d-train-{sc.name}-{scheme}-{runner}-s{seed}"
    if runner == "network":
        from controller.evaluation.d2d_run import print_d2d_summary

        summary = execute(resolved, scheme, "network", slots, seed, out, (), None,
                          {"train": {"broadcast_period": broadcast_period,
                                     "random_slots": random_slots,
                                     **({"asynchronous": True} if asynchronous else {}),
                                     "learner": {"neighbours": neighbours,
                                              "batch_size": batch_size,
                                              "actor_hidden": list(maac.actor_hidden),
                                              "critic_hidden": list(maac.critic_hidden),
                                              "gamma": gamma, "actor_update": actor_update,
                                              "entropy": entropy}}})
        print_d2d_summary([summary], Console(width=max(120, Console().width)),
                          title=f"network training: {scheme}")
    else:
        from controller.training.d2d_train import D2dTrainConfig, train_and_write

        cfg = D2dTrainConfig(maac=maac, random_slots=random_slots)
        with progress_bar() as bar:
            task = bar.add_task(f"{scheme}: {slots} slots (local)", total=slots)
            curve = train_and_write(sc, scheme, slots, seed, cfg, out,
                                    lambda t: bar.update(task, completed=t + 1))
        last = curve[-1]
        span = int(last["slot"]) - (int(curve[-2]["slot"]) if len(curve) > 1 else 0)
        console.print(f"last {span} slots: total reward {last['total_reward']:.3f}, D2D sum rate "
                      f"{last['d2d_sum_mbps']:.3f} Mbit/s, CUE outage {last['cue_outage']:.4f}, "
                      f"D2D outage {last['d2d_outage']:.4f}")
    click.echo(f"weights: {out / 'weights.npz'}")
