"""Pareto front of result rows: the runs no other run beats on both memory and speed."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def pareto_front(
    df: pd.DataFrame, x: str = "peak_vram_bytes", y: str = "slowdown", by: Sequence[str] = ()
) -> pd.Series:
    """Mark the rows that minimise both `x` and `y` within each `by` group.

    Only rows with status "ok" and both values present compete. A row is off the front when another
    is no worse in both and better in one; identical points are all on it.
    """
    rows = df.reset_index(drop=True)
    eligible = rows[rows["status"].eq("ok") & rows[x].notna() & rows[y].notna()]
    front = np.zeros(len(rows), dtype=bool)
    groups = eligible.groupby(list(by), dropna=False, sort=False) if by else [(None, eligible)]
    for _, group in groups:
        front[group.index] = _undominated(group[x].to_numpy(float), group[y].to_numpy(float))
    return pd.Series(front, index=df.index, name="pareto")


def _undominated(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """True where no other point is <= in both coordinates and < in one."""
    no_worse = (xs[None, :] <= xs[:, None]) & (ys[None, :] <= ys[:, None])
    better = (xs[None, :] < xs[:, None]) | (ys[None, :] < ys[:, None])
    return ~(no_worse & better).any(axis=1)
