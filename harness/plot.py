"""Pareto plot: peak VRAM against slowdown, one panel per family."""
from __future__ import annotations

import math
from itertools import cycle
from pathlib import Path

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.text import Annotation
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from matplotlib.transforms import Bbox, Transform

from harness.errors import GB

LOG_ABOVE = 3.0  # slowdowns beyond this get a log axis, so the runs near 1x stay apart
OOM_Y = 0.95  # height of out-of-memory marks, as a fraction of the axis
COLORS = ("tab:blue", "tab:green", "tab:purple", "tab:orange", "tab:brown", "tab:cyan")
# Label positions tried in turn (points from the mark): the first that collides with nothing wins.
OFFSETS = ((6, 2), (6, -2), (-6, 2), (-6, -2), (6, 12), (6, -12), (-6, 12), (-6, -12), (6, 22), (6, -22))

Label = tuple[str, tuple[float, float], Transform, str]  # text, anchor, the anchor's transform, colour


def byte_unit(largest: float) -> tuple[str, float]:
    """GiB, or MiB when even the largest value is under one GiB (tiny test models)."""
    return ("MiB", 2.0**20) if largest < 2**30 else ("GiB", 2.0**30)


def plot_pareto(df: pd.DataFrame, path: str | Path) -> Figure:
    """Plot peak VRAM against slowdown, one panel per family, from an add_derived frame; save a PNG."""
    families = sorted(df["family"].dropna().unique())
    ncols = min(len(families), 2) or 1
    nrows = max(math.ceil(len(families) / ncols), 1)
    fig = Figure(figsize=(7 * ncols, 4.6 * nrows + 0.6), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[max(len(families), 1):]:
        fig.delaxes(ax)
    labels = {ax: _panel(ax, family, df[df["family"] == family]) for ax, family in zip(axes, families)}
    devices = df["device_name"].fillna(df["device"]).dropna().unique()
    fig.suptitle(f"Peak VRAM against slowdown on {', '.join(sorted(map(str, devices))) or 'unknown device'}",
                 fontsize=13)
    fig.legend(handles=_legend(), loc="outside lower center", ncols=5 if ncols > 1 else 3, frameon=False)
    fig.get_layout_engine().execute(fig)  # settle the axes so labels can be placed in display space
    for ax, requests in labels.items():
        _place_labels(ax, requests)
    fig.savefig(path, format="png")
    return fig


def _panel(ax: Axes, family: str, runs: pd.DataFrame) -> list[Label]:
    """One family: ok runs, a frontier per setting, out-of-memory runs on top; returns the labels."""
    budgets = runs["vram_budget_gb"] * GB
    unit, scale = byte_unit(pd.concat([runs["peak_vram_bytes"], budgets]).max())
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=1, zorder=1)
    settings = runs.groupby("setting", sort=False)
    common, names = _split_common([setting for setting, _ in settings])
    labels: list[Label] = []
    for color, name, (_, group) in zip(cycle(COLORS), names, settings):
        ok = group[group["status"].eq("ok") & group["slowdown"].notna() & group["peak_vram_bytes"].notna()]
        labels += _runs(ax, ok, scale, color, name)
        labels += _out_of_memory(ax, group[group["status"].eq("oom")], scale)
    if not runs["slowdown"].notna().any():
        ax.text(0.5, 0.5, "no successful run with a resident reference", transform=ax.transAxes,
                ha="center", color="grey")
    ax.set_title(family, loc="left", fontweight="bold")
    ax.set_title(common, loc="right", fontsize=8, color="dimgrey")
    right = max((x for _, (x, _), _, _ in labels), default=1.0)
    _limits(ax, right, runs["slowdown"].min(), runs["slowdown"].max())
    source = ", ledger: weights only" if runs["peak_vram_source"].eq("ledger").any() else ""
    ax.set_xlabel(f"peak VRAM ({unit}{source})")
    ax.set_ylabel("slowdown vs resident (×)")
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")
    return labels


def _split_common(settings: list[str]) -> tuple[str, list[str | None]]:
    """The setting parts all share, and what sets each apart (None when there is only one)."""
    parts = [setting.split(" · ") for setting in settings]
    common = [part for part in parts[0] if all(part in other for other in parts)] if parts else []
    distinct = [" · ".join(p for p in own if p not in common) for own in parts]
    return " · ".join(common), distinct if len(settings) > 1 else [None] * len(settings)


def _runs(ax: Axes, ok: pd.DataFrame, scale: float, color: str, name: str | None) -> list[Label]:
    """Points, stars on the Pareto front and a step line through it; returns front labels first."""
    ax.scatter(ok["peak_vram_bytes"] / scale, ok["slowdown"], color=color, s=30, zorder=3)
    front = ok[ok["pareto"]].sort_values(["peak_vram_bytes", "slowdown"])
    fx, fy = front["peak_vram_bytes"] / scale, front["slowdown"]
    ax.step(fx, fy, where="post", color=color, linewidth=1.5, alpha=0.7, zorder=2,
            label=name if len(front) else None)
    ax.scatter(fx, fy, color=color, marker="*", s=160, edgecolor="black", linewidth=0.5, zorder=4)
    ranked = ok.sort_values("pareto", ascending=False, kind="stable")
    return [(label, (vram / scale, slowdown), ax.transData, "black")
            for label, vram, slowdown in zip(ranked["label"], ranked["peak_vram_bytes"], ranked["slowdown"])]


def _out_of_memory(ax: Axes, oom: pd.DataFrame, scale: float) -> list[Label]:
    """Red crosses at each run's VRAM budget (or its peak), at the top of the axis."""
    x = ((oom["vram_budget_gb"] * GB).fillna(oom["peak_vram_bytes"]) / scale).dropna()
    where = ax.get_xaxis_transform()
    ax.scatter(x, [OOM_Y] * len(x), transform=where, marker="X", s=70, color="red", zorder=4)
    return [(f"{label}: OOM", (xi, OOM_Y), where, "red") for label, xi in zip(oom.loc[x.index, "label"], x)]


def _limits(ax: Axes, right: float, low: float, high: float) -> None:
    """VRAM from zero past `right`; slowdown from just under the fastest run, room above for OOM marks."""
    low = 1.0 if pd.isna(low) else min(low, 1.0)
    high = 1.0 if pd.isna(high) else max(high, 1.0)
    ax.set_xlim(left=0, right=right * 1.08)
    if high > LOG_ABOVE:
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_ylim(bottom=low * 0.9, top=high * 1.8 if high > LOG_ABOVE else max(high * 1.25, 1.5))


def _place_labels(ax: Axes, labels: list[Label]) -> None:
    """Annotate each mark at the first offset whose text stays in the axes and overlaps nothing."""
    renderer = ax.figure.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    taken = [_mark_box(xy, transform) for _, xy, transform, _ in labels]
    if ax.get_legend():
        taken.append(ax.get_legend().get_window_extent(renderer))
    for text, xy, transform, color in labels:
        for dx, dy in OFFSETS:
            note = _annotate(ax, text, xy, transform, color, dx, dy)
            box = note.get_window_extent(renderer)
            inside = frame.contains(box.x0, box.y0) and frame.contains(box.x1, box.y1)
            if inside and not any(box.overlaps(other) for other in taken):
                break
            note.remove()
        else:
            box = _annotate(ax, text, xy, transform, color, *OFFSETS[0]).get_window_extent(renderer)
        taken.append(box)


def _annotate(ax: Axes, text: str, xy: tuple[float, float], transform: Transform, color: str,
              dx: float, dy: float) -> Annotation:
    """Write `text` (dx, dy) points from `xy`, with a leader line when it sits away from the mark."""
    leader = dict(arrowstyle="-", color="grey", linewidth=0.5, shrinkA=0, shrinkB=4) if abs(dy) > 2 else None
    return ax.annotate(text, xy, xycoords=transform, xytext=(dx, dy), textcoords="offset points",
                       fontsize=8, color=color, ha="left" if dx > 0 else "right",
                       va="bottom" if dy > 0 else "top", arrowprops=leader)


def _mark_box(xy: tuple[float, float], transform: Transform, size: float = 10) -> Bbox:
    """Display-space square around a mark, so labels keep off other marks."""
    x, y = transform.transform(xy)
    return Bbox.from_bounds(x - size / 2, y - size / 2, size, size)


def _legend() -> list[Line2D]:
    """Figure legend: what each mark means."""
    return [
        Line2D([], [], color="grey", linestyle="--", label="resident (slowdown 1.0)"),
        Line2D([], [], color="tab:blue", marker="o", linestyle="", label="run"),
        Line2D([], [], color="tab:blue", marker="*", markersize=12, markeredgecolor="black",
               linestyle="", label="Pareto-optimal"),
        Line2D([], [], color="tab:blue", drawstyle="steps-post", label="Pareto frontier"),
        Line2D([], [], color="red", marker="X", linestyle="", label="out of memory (at VRAM budget)"),
    ]
