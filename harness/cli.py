"""`python -m harness`: one benchmark job per Hydra run; `-m` sweeps any grid."""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from families.base import FAMILIES
from harness.atomic import write_json
from harness.errors import HarnessError
from harness.layout import RESULT_FILE
from harness.registry import unknown_name_message
from harness.reuse import finished_result, finished_twin
from harness.run import run_job
from harness.summary import one_line
from strategies.base import STRATEGIES

GROUPS = {"family": FAMILIES, "strategy": STRATEGIES}
EXIT_CODES = {"error": 2, "oom": 3}
CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")


class Interrupt:
    """Ctrl-C stops the running job at once; between jobs (while Hydra composes the next config, where an
    exception would be reported as a config error) it only stops the sweep before its next job."""

    requested = False
    in_job = False

    @classmethod
    def handle(cls, signum: int, frame: object) -> None:
        cls.requested = True
        if cls.in_job:
            raise KeyboardInterrupt

    @classmethod
    def check(cls) -> None:
        if cls.requested:
            raise KeyboardInterrupt


def check_group_overrides(argv: list[str]) -> None:
    """Fail early, in one line, on an unknown `family=` or `strategy=` value (also inside sweep lists)."""
    for arg in argv:
        key, sep, value = arg.partition("=")
        registry = GROUPS.get(key.lstrip("+~"))
        if not sep or registry is None:
            continue
        for name in value.split(","):
            if name.strip() and name.strip() not in registry.names():
                raise HarnessError(unknown_name_message(registry.kind, name.strip(), registry.names()))


@hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")
def task(cfg: DictConfig) -> dict:
    """Run one job, or reuse its result when a sweep is resumed."""
    hydra_cfg = HydraConfig.get()
    job_dir = Path(hydra_cfg.runtime.output_dir)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    if multirun:
        total = os.environ.get("HARNESS_SWEEP_TOTAL", "?")
        print(f"[job {hydra_cfg.job.num + 1}/{total}] {cfg.family.name} {cfg.strategy.name} "
              f"{hydra_cfg.job.override_dirname}", file=sys.stderr, flush=True)
    row = None if cfg.run.force else finished_result(job_dir)
    twin = finished_twin(cfg, job_dir) if multirun and row is None and not cfg.run.force else None
    if row is not None:
        print(f"skip (done): {job_dir / RESULT_FILE}", file=sys.stderr)
    elif twin is not None:
        print(f"skip (same job as {twin[0].name}: {cfg.strategy.name} ignores the knobs that differ)",
              file=sys.stderr)
        row = twin[1] | {"same_as": twin[0].name}
        write_json(job_dir / RESULT_FILE, row)
    else:
        Interrupt.in_job = True
        try:
            Interrupt.check()
            row = run_job(cfg, job_dir)
        finally:
            Interrupt.in_job = False
    print(one_line(row), flush=True)
    if not multirun and row["status"] in EXIT_CODES:
        print(f"{row['status']}: {row['error']}", file=sys.stderr)
        sys.exit(EXIT_CODES[row["status"]])
    return row


def main() -> None:
    """Entry point: validate group names, then hand over to Hydra."""
    try:
        check_group_overrides(sys.argv[1:])
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    signal.signal(signal.SIGINT, Interrupt.handle)
    try:
        task()
        Interrupt.check()
    except KeyboardInterrupt:
        sweep_dir = os.environ.get("HARNESS_SWEEP_DIR")
        if sweep_dir:
            from harness.callbacks import write_report

            write_report(Path(sweep_dir), "interrupted: report of the finished jobs")
        print("interrupted", file=sys.stderr)
        sys.exit(130)
