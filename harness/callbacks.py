"""Hydra callbacks: a sweep counts its jobs at the start and writes its report at the end."""
from __future__ import annotations

import logging
import math
import os
import sys
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from harness.errors import HarnessError

log = logging.getLogger(__name__)


def count_jobs(overrides: list[str]) -> int:
    """Number of jobs a basic sweep over these overrides runs (product of the sweep lists)."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    return math.prod(len(list(o.sweep_iterator())) if o.is_sweep_override() else 1 for o in parsed)


def write_report(sweep_dir: Path, what: str = "report") -> None:
    """Aggregate a sweep folder into its report files; a sweep without results only says so."""
    from harness.report import aggregate

    try:
        df = aggregate([sweep_dir])
    except HarnessError as exc:
        print(f"{what}: {exc}", file=sys.stderr)
        return
    print(f"{what}: {len(df)} rows -> {sweep_dir / 'report.md'}", file=sys.stderr)


class SweepReport(Callback):
    """At the end of every multirun, write report.csv/.parquet/.md and pareto.png into the sweep folder."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        os.environ["HARNESS_SWEEP_DIR"] = str(config.hydra.sweep.dir)
        overrides = list(config.hydra.overrides.task)
        sweeper_params = config.hydra.sweeper.get("params") or {}
        overrides += [f"{k}={v}" for k, v in sweeper_params.items()]
        try:
            os.environ["HARNESS_SWEEP_TOTAL"] = str(count_jobs(overrides))
        except Exception:
            os.environ["HARNESS_SWEEP_TOTAL"] = "?"

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        write_report(Path(config.hydra.sweep.dir))
