"""The paper-001 figures as PNG files (matplotlib, Agg canvas, no pyplot global state).

* :func:`plot_training`: per-iteration reward of several seeds and its exponentially
  weighted average (Fig. 6-9);
* :func:`plot_bars`: average sum-rate per method (Fig. 11, Fig. 15);
* :func:`plot_pmax_sweep`: sum-rate against Pmax (Fig. 14);
* :func:`plot_reward_vs`: reward against steps and wall time for a benchmark;
* :func:`plot_spread`: mean ± std over seeds of several methods against x (paper 002,
  Fig. 6-11).

Smoothing (paper 001, footnote 2): the paper writes ``s[n] = w x[n] + (1 - w) s[n-1]``
with "smoothing factor" w = 0.96. Read literally, w = 0.96 puts 96 % of the weight on the
newest sample and smooths almost nothing, which contradicts the smoothed panels (b) of
Fig. 6-9; the figures match TensorBoard's smoothing slider (TF 1.14), where the weight
multiplies the running average. :func:`ewma` therefore computes
``s[1] = x[1]``, ``s[n] = w s[n-1] + (1 - w) x[n]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from node.schemes import SCHEMES, Scheme

Array = npt.NDArray[np.float64]
Curve = tuple[str, Sequence[float] | Array, Sequence[float] | Array]
"""(label, x values, y values)."""

DPI = 130
BENCH_COLORS = {
    "trpo (ours)": "#1f77b4",
    "trpo (sb3-contrib)": "#ff7f0e",
    "trpo (sb3, default KL)": "#e6a86b",
    "trpo (ours, delta x act_dim)": "#7fb2d9",
}
"""Colours of the benchmark curves (controller.bench.trpo); a scheme's colour and label
come from its registry entry (Scheme.color, Scheme.label), the same in every figure."""


def _scheme(name: str) -> Scheme | None:
    """The registered scheme called ``name`` (the first kind that has one), if any."""
    found = SCHEMES.named(name)
    return found[0] if found else None


def ewma(x: Sequence[float] | Array, weight: float = 0.96) -> Array:
    """Exponentially weighted average: ``s[0] = x[0]``, ``s[n] = w s[n-1] + (1 - w) x[n]``."""
    if not 0.0 <= weight < 1.0:
        raise ValueError("weight must be in [0, 1)")
    xs = np.asarray(x, dtype=np.float64)
    out = np.empty_like(xs)
    acc = 0.0
    for n, v in enumerate(xs):
        acc = float(v) if n == 0 else weight * acc + (1.0 - weight) * float(v)
        out[n] = acc
    return out


def _new(width: float, height: float, ncols: int = 1) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    return fig, axes


def _save(fig: Figure, path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p)
    return p


def _label(name: str) -> str:
    """Display name; "centralized (a2c)" becomes "centralized RL (a2c)"."""
    if (scheme := _scheme(name)) is not None:
        return scheme.display
    base, sep, rest = name.partition(" (")
    if sep and (scheme := _scheme(base)) is not None:
        return f"{scheme.display} ({rest}"
    return name


def _color(name: str) -> str | None:
    """Colour of a method; a variant "scheme (tag)" gets the scheme's colour unless it is
    an A2C policy (olive), so A2C and TRPO of one scheme differ."""
    if name in BENCH_COLORS:
        return BENCH_COLORS[name]
    if (scheme := _scheme(name)) is not None:
        return scheme.color
    if "a2c" in name:
        return "#bcbd22"
    scheme = _scheme(name.partition(" (")[0])
    return None if scheme is None else scheme.color


def _steps_axis(ax: Axes) -> None:
    from matplotlib.ticker import EngFormatter

    ax.xaxis.set_major_formatter(EngFormatter(sep=""))  # 20k, 40k, 1M


def plot_training(
    curves: Sequence[Curve],
    path: str | Path,
    title: str,
    references: Mapping[str, float] | None = None,
    weight: float = 0.96,
    xlabel: str = "training steps",
    ylabel: str = "average sum-rate per episode (Mbit/s)",
    reference_note: str = "",
) -> Path:
    """Two panels as Fig. 6-9: (a) the raw per-iteration reward, (b) its EWMA (``weight``).

    ``references`` draws horizontal dashed lines, ``{method: value}`` (e.g. the optimum's
    and WMMSE's sum-rates);
    ``reference_note`` is appended to their legend labels.
    """
    fig, (ax_raw, ax_avg) = _new(11.0, 4.2, ncols=2)
    cmap = _seed_colors(len(curves))
    for (label, x, y), color in zip(curves, cmap, strict=True):
        ax_raw.plot(x, y, lw=0.8, alpha=0.8, color=color, label=label)
        ax_avg.plot(x, ewma(y, weight), lw=1.5, color=color, label=label)
    for ax, sub in ((ax_raw, "(a) per-iteration reward"),
                    (ax_avg, f"(b) exponentially weighted average, w = {weight:g}")):
        for name, val in (references or {}).items():
            ax.axhline(val, ls="--", lw=1.0, color=_color(name) or "grey",
                       label=_label(name) + reference_note)
        ax.set_title(sub, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        _steps_axis(ax)
    ax_avg.legend(fontsize=8, loc="best", ncols=2 if len(curves) > 5 else 1)
    fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def _seed_colors(n: int) -> list[tuple[float, float, float, float]]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


def plot_bars(
    values: Mapping[str, float],
    path: str | Path,
    title: str,
    ylabel: str = "average sum-rate (Mbit/s)",
    notes: Mapping[str, str] | None = None,
) -> Path:
    """Average sum-rate per method as labelled bars (Fig. 11 / Fig. 15), in the given order.

    ``notes`` adds a second line under a bar's value (e.g. its optimality gap).
    """
    names = list(values)
    fig, (ax,) = _new(max(6.0, 1.05 * len(names) + 1.5), 4.2)
    heights = [values[n] for n in names]
    colors = [_color(n) or "#7f7f7f" for n in names]
    bars = ax.bar(range(len(names)), heights, color=colors)
    top = max(heights) if heights else 1.0
    for name, rect, h in zip(names, bars, heights, strict=True):
        text = f"{h:.1f}"
        if notes and notes.get(name):
            text += f"\n{notes[name]}"
        ax.text(rect.get_x() + rect.get_width() / 2, h + 0.01 * top, text,
                ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(names)), [_label(n) for n in names], rotation=20, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, top * 1.15)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def plot_pmax_sweep(
    pmax_dbm: Sequence[float],
    series: Mapping[str, Sequence[float]],
    path: str | Path,
    title: str,
    ylabel: str = "average sum-rate (Mbit/s)",
    trained_dbm: float | None = None,
    reference: str | None = None,
) -> Path:
    """Sum-rate of every method against Pmax (Fig. 14).

    With ``reference`` (e.g. the optimum) in ``series`` a second panel shows every method in
    % of it, so the low-Pmax end (a few Mbit/s) stays readable.
    """
    relative = reference is not None and reference in series
    fig, axes = _new(12.0 if relative else 7.0, 4.6, ncols=2 if relative else 1)
    markers = "os^vDP*Xh"
    ref = np.asarray(series[reference], dtype=np.float64) if relative and reference else None
    for i, (name, ys) in enumerate(series.items()):
        style = {"marker": markers[i % len(markers)], "ms": 4, "lw": 1.3,
                 "color": _color(name), "label": _label(name),
                 "ls": "--" if name == reference else "-"}
        axes[0].plot(pmax_dbm, ys, **style)  # type: ignore[arg-type]
        if ref is not None:
            axes[1].plot(pmax_dbm, 100.0 * np.asarray(ys) / ref, **style)  # type: ignore[arg-type]
    axes[0].set_ylabel(ylabel)
    axes[0].set_title("(a) average sum-rate", fontsize=10)
    if ref is not None:
        axes[1].set_ylabel(f"% of {_label(str(reference))}")
        axes[1].set_title(f"(b) relative to the {_label(str(reference))}", fontsize=10)
    for ax in axes:
        if trained_dbm is not None:
            ax.axvline(trained_dbm, color="grey", lw=0.8, ls=":")
        ax.set_xlabel("Pmax (dBm)")
        ax.grid(alpha=0.3)
    if trained_dbm is not None:  # top left of panel (a) is empty: curves grow with Pmax
        axes[0].annotate(f"RL trained at {trained_dbm:g} dBm ", (trained_dbm, 0.98),
                         xycoords=("data", "axes fraction"), fontsize=8, color="grey",
                         ha="right", va="top")
    axes[-1].legend(fontsize=8, loc="center left" if ref is not None else "upper left",
                    bbox_to_anchor=(1.0, 0.5) if ref is not None else None)
    fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def plot_reward_vs(
    curves: Sequence[tuple[str, Array, Array, Array]],
    path: str | Path,
    title: str,
    ylabel: str = "mean episode reward (bit/s/Hz)",
    target: float | None = None,
    target_label: str = "target",
) -> Path:
    """Two panels: reward against env steps and against wall time.

    ``curves``: (label, steps, wall seconds, reward); ``target``: a horizontal line.
    """
    fig, (ax_s, ax_t) = _new(11.0, 4.2, ncols=2)
    for label, steps, wall, reward in curves:
        color = _color(label)
        ax_s.plot(steps, reward, lw=1.4, color=color, label=label)
        ax_t.plot(wall, reward, lw=1.4, color=color, label=label)
    for ax, xl in ((ax_s, "environment steps"), (ax_t, "wall time (s)")):
        if target is not None:
            ax.axhline(target, ls="--", lw=0.9, color="grey", label=target_label)
        ax.set_xlabel(xl)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    _steps_axis(ax_s)
    ax_t.legend(fontsize=8, loc="lower right")
    fig.suptitle(title, fontsize=11)
    return _save(fig, path)


Spread = tuple[Sequence[float] | Array, Sequence[float] | Array, Sequence[float] | Array]
"""(x values, means, standard deviations) of one method."""


def plot_spread(
    panels: Sequence[tuple[str, Mapping[str, Spread]]],
    path: str | Path,
    title: str,
    xlabel: str,
    ylabel: str | Sequence[str],
    references: Sequence[Mapping[str, tuple[float, float]]] | None = None,
    band: bool = False,
    colors: Mapping[str, str | None] | None = None,
) -> Path:
    """Mean ± standard deviation of every method against x, one panel per
    ``(subtitle, {method: (x, mean, std)})``: error bars, or a shaded band (``band``, for
    long curves). ``references[i]``: ``{method: (mean, std)}`` drawn in panel i as a dashed
    horizontal line with a faint band (a method that does not vary with x). ``colors``: a
    method's colour where its name alone is ambiguous (a scheme name several kinds use)."""
    fig, axes = _new(6.8 * len(panels) + (1.6 if len(panels) == 1 else 0.0), 4.4,
                     ncols=len(panels))
    markers = "os^vDP*Xh<>"
    ylabels = [ylabel] * len(panels) if isinstance(ylabel, str) else list(ylabel)
    for i, (ax, (sub, series)) in enumerate(zip(axes, panels, strict=True)):
        xs_all = sorted({float(v) for x, _, _ in series.values() for v in x})
        step = 0.0 if band or len(xs_all) < 2 else 0.008 * (xs_all[-1] - xs_all[0])
        for j, (name, (x, mean, std)) in enumerate(series.items()):
            xs, m, s = (np.asarray(v, dtype=np.float64) for v in (x, mean, std))
            xs = xs + step * (j - (len(series) - 1) / 2)  # error bars side by side
            color = colors[name] if colors and name in colors else _color(name)
            label = _label(name)
            if band:
                (line,) = ax.plot(xs, m, lw=1.4, color=color, label=label)
                ax.fill_between(xs, m - s, m + s, color=line.get_color(), alpha=0.18, lw=0)
            else:
                ax.errorbar(xs, m, yerr=s, marker=markers[j % len(markers)], ms=4, lw=1.3,
                            capsize=3, color=color, label=label)
        for name, (ref, ref_std) in (references[i] if references else {}).items():
            ref_color = colors[name] if colors and name in colors else _color(name)
            line = ax.axhline(ref, ls="--", lw=1.1, color=ref_color or "grey",
                              label=f"{_label(name)} (reference)")
            if ref_std > 0:
                ax.axhspan(ref - ref_std, ref + ref_std, color=line.get_color(), alpha=0.1, lw=0)
        if not band and 0 < len(xs_all) <= 12:
            ax.set_xticks(xs_all, [f"{v:g}" for v in xs_all])
        if sub:
            ax.set_title(sub, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabels[i])
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)
