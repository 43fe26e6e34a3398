"""Reusing finished results instead of running a job again: its own (a resumed sweep), or a twin's (a job of
the same sweep that differs only in knobs its strategy ignores, e.g. `none` under `strategy.prefetch_depth=1,2`)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from harness.errors import HarnessError
from harness.layout import RESULT_FILE
from strategies.base import SHARED_KNOBS, STRATEGIES

FINISHED = ("ok", "skipped", "oom")
NOT_AFFECTING_RESULTS = ("force", "progress")


def finished_result(job_dir: Path) -> dict[str, Any] | None:
    """The job's finished row (ok, skipped or oom; an error is run again), or None."""
    try:
        row = json.loads((job_dir / RESULT_FILE).read_text())
    except (OSError, ValueError):
        return None
    return row if row.get("status") in FINISHED else None


def job_identity(cfg: DictConfig) -> str | None:
    """What decides a job's result, as canonical JSON (unresolved, so configs of one sweep compare as
    written): the strategy's ignored knobs and display settings are left out. None for an unknown strategy."""
    data = OmegaConf.to_container(cfg, resolve=False)
    data.pop("hydra", None)
    try:
        strategy_cls = STRATEGIES.get(str(data["strategy"]["name"]))
    except (HarnessError, KeyError, TypeError):
        return None
    for knob in SHARED_KNOBS:
        if knob not in strategy_cls.knobs:
            data["strategy"].pop(knob, None)
    for key in NOT_AFFECTING_RESULTS:
        data.get("run", {}).pop(key, None)
    return json.dumps(data, sort_keys=True, default=str)


def finished_twin(cfg: DictConfig, job_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    """A finished job of the same sweep with the same identity, and its row."""
    identity = job_identity(cfg)
    if identity is None or not job_dir.parent.is_dir():
        return None
    for sibling in sorted(p for p in job_dir.parent.iterdir() if p.is_dir() and p != job_dir):
        config = sibling / ".hydra" / "config.yaml"
        if config.is_file() and config_identity(config) == identity and (row := finished_result(sibling)):
            return sibling, row
    return None


_IDENTITIES: dict[tuple[Path, int], str | None] = {}


def config_identity(config: Path) -> str | None:
    """`job_identity` of a sibling job's saved config, read once per process and version of the file: a sweep's
    jobs run one after another in one process, and each would otherwise read every sibling's config again."""
    key = (config, config.stat().st_mtime_ns)
    if key not in _IDENTITIES:
        _IDENTITIES[key] = job_identity(OmegaConf.load(config))
    return _IDENTITIES[key]
