"""``rrmbed v2x``: vehicular spectrum sharing (paper 000) — train and compare."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from controller.cli.common import (
    SchemeChoice,
    cli,
    console,
    execute,
    progress_bar,
    resolve_v2x,
    resume_network,
    sweep_config,
    sweep_options,
)
from controller.cli.common import (
    seed_list as seed_list_of,
)
from node.schemes import SCHEMES


@cli.group()
def v2x() -> None:
    """Vehicular spectrum sharing (paper 000): multi-agent DQN with fingerprints."""


@v2x.command("train")
@click.argument("scenario", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                default="scenarios/v2x-manhattan.toml")
@click.option("--scheme", type=SchemeChoice("v2x", lambda s: s.trainable),
              default=SCHEMES.default("v2x", "train"), show_default=True)
@click.option("--runner", type=click.Choice(["local", "network"]), default="local",
              show_default=True, help="local: vectorized episodes in one process; network: "
              "vehicle nodes upload experience, the controller trains and broadcasts weights.")
@click.option("--episodes", type=click.IntRange(1), default=200, show_default=True,
              help="Training episodes (each deadline_s / slot_s slots).")
@click.option("--broadcast-period", type=click.IntRange(1), default=100, show_default=True,
              help="Network runner: slots between weight broadcasts.")
@click.option("--sharing", type=click.Choice(["per-agent", "shared"]), default="per-agent",
              show_default=True, help="One Q network per vehicle (the paper) or one shared "
              "network with the vehicle id one-hot in its input.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--checkpoint-every", type=click.IntRange(1), default=10, show_default=True,
              help="Network runner: a checkpoint at the first update on an episode boundary "
              "once N updates have passed since the last one, and at the end.")
@click.option("--resume", "resume_dir", type=click.Path(exists=True, file_okay=False,
              path_type=Path), help="Continue the network training run RUN_DIR from its "
              "latest checkpoint, with the settings it was started with.")
@click.option("--controller-restarts", type=click.IntRange(0), default=0, show_default=True,
              help="Network runner: restart a controller that dies (up to N times); it "
              "continues from its latest checkpoint while the vehicles and the air wait.")
def v2x_train(scenario: Path, scheme: str, runner: str, episodes: int, broadcast_period: int,
              sharing: str, seed: int, out: Path | None, checkpoint_every: int,
              resume_dir: Path | None, controller_restarts: int) -> None:
    """Train SCHEME's Q networks; writes OUT/weights.npz (for `rrmbed run --weights`) and
    the training curve (training.csv). Over the network (durable as `rrmbed train`'s):
    updates.jsonl, checkpoints/, and `--resume OUT --runner network` after a kill."""
    if resume_dir is not None:
        if runner != "network":
            raise click.UsageError("--resume RUN_DIR continues a --runner network run")
        from controller.evaluation.v2x_run import print_v2x_summary

        summary = resume_network(resume_dir, "v2x", "v2x train")
        print_v2x_summary([summary], Console(width=max(120, Console().width)),
                          title=f"network training: {summary['scheme']}")
        click.echo(f"weights: {resume_dir / 'weights.npz'}")
        return
    sc = resolve_v2x(scenario, ())
    out = out or Path("runs") / f"v2x-train-{scheme}-{runner}-s{seed}"
    if runner == "network":
        summary = execute(scenario, scheme, "network", episodes * sc.n_steps, seed, out, (),
                          None, {"train": {"broadcast_period": broadcast_period,
                                           "sharing": sharing,
                                           "checkpoint_every": checkpoint_every},
                           "controller_restarts": controller_restarts})
        from controller.evaluation.v2x_run import print_v2x_summary

        print_v2x_summary([summary], Console(width=max(120, Console().width)),
                          title=f"network training: {scheme}")
    else:
        from controller.training.v2x_marl import marl_config, train_and_write

        with progress_bar() as bar:
            bar.add_task(f"{scheme}: {episodes} episodes (local)", total=None)
            curve = train_and_write(sc, scheme, episodes, seed, marl_config(sharing), out)
        last = curve[-10:]
        if last:
            console.print(f"last {len(last)} training episodes: delivery rate "
                          f"{sum(c['delivery_rate'] for c in last) / len(last):.3f}")
    click.echo(f"weights: {out / 'weights.npz'}")


@v2x.command("compare")
@click.argument("scenario", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                default="scenarios/v2x-manhattan.toml")
@click.option("--episodes", type=click.IntRange(1), default=200, show_default=True,
              help="Training episodes per scheme and seed.")
@click.option("--seeds", default="0,1,2", show_default=True,
              help="Seeds: comma-separated, or ranges such as 0-9.")
@sweep_options
@click.option("--eval-episodes", type=click.IntRange(1), default=100, show_default=True,
              help="Fresh drops each trained policy is evaluated on (greedy).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("runs/v2x-compare"), show_default=True)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Scenario overrides (repeatable), e.g. radio.n_vehicles=8.")
def v2x_compare(scenario: Path, episodes: int, seeds: str, backend: str, address: str | None,
                ray_retries: int, eval_episodes: int, out: Path, sets: tuple[str, ...]) -> None:
    """Train and evaluate marl-dqn, marl-dqn-nofp, turn-dqn and random on every seed (local
    runner); print the delivery rates and sum V2I rates next to the single-link bound (each
    V2V link alone on its best RB at full power: no scheme can deliver more); write
    results.json / results.csv; then the paired differences between every two schemes over
    the seeds (each seed evaluates every scheme on the same drops), with 95 % intervals
    (paired.csv)."""
    from controller.evaluation.v2x_compare import compare

    sc = resolve_v2x(scenario, sets)
    seed_list = seed_list_of(seeds)
    sweep = sweep_config(backend, address, ray_retries)
    with progress_bar() as bar:
        bar.add_task(f"every V2X scheme x {len(seed_list)} seeds x {episodes} episodes"
                     f"{' (Ray)' if sweep.backend == 'ray' else ''}", total=None)
        table, differences = compare(sc, episodes, seed_list, eval_episodes, out, sweep,
                                     say=click.echo)
    console = Console(width=max(120, Console().width))
    console.print(table)
    console.print(differences)
    click.echo(f"results: {out / 'results.json'}")
