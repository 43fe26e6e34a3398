"""Turning the Hydra config into validated job settings (one clear error per bad value)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from families.base import BuildSpec, Family, FAMILIES, GenerateArgs
from harness.errors import HarnessError, gigabytes, whole_number
from strategies.base import SHARED_KNOBS, STRATEGIES, Strategy

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
BUILD_PLACES = ("auto", "device", "host")


@dataclass
class JobSettings:
    """A validated job: what to build, how to generate, which strategy, how to measure."""

    family: Family
    spec: BuildSpec
    args: GenerateArgs
    strategy: Strategy
    strategy_params: dict[str, Any]
    warmup: int
    repeats: int
    vram_budget_gb: float | None
    build_on: str = "auto"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise HarnessError(f"run.device={name!r} is not valid: use auto, cpu, cuda or cuda:N") from exc
    if device.type not in ("cpu", "cuda"):
        raise HarnessError(f"run.device={name!r} is not valid: use auto, cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise HarnessError(f"run.device={name!r} is not available: this machine has no CUDA device (use cpu)")
    return device


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if name not in DTYPES:
        raise HarnessError(f"run.dtype={name!r} is not valid: use auto, {', '.join(DTYPES)}")
    return DTYPES[name]


def resolve_build_on(name: str) -> str:
    if name not in BUILD_PLACES:
        raise HarnessError(f"run.build_on={name!r} is not valid: use {', '.join(BUILD_PLACES)}")
    return name


def strategy_parameters(strategy_cls: type[Strategy], given: dict[str, Any]) -> dict[str, Any]:
    """The strategy's own settings: unset (null) ones and shared knobs it does not use are left out."""
    params = {}
    for key, value in given.items():
        if key == "name" or value is None or (key in SHARED_KNOBS and key not in strategy_cls.knobs):
            continue
        if key not in strategy_cls.knobs:
            raise HarnessError(f"strategy.{key} is not a setting of {strategy_cls.name}: "
                               f"use {', '.join(strategy_cls.knobs) or 'no settings'}")
        params[key] = value
    return params


def resolve(cfg: DictConfig) -> JobSettings:
    """Validate every setting and build the job's parts, failing early with one line."""
    family = FAMILIES.get(cfg.family.name)()
    variant = cfg.family.get("variant") or family.default_variant()
    family.check_variant(variant)
    scale = cfg.family.get("scale", "tiny")
    family.check_scale(scale)
    weights = cfg.family.get("weights")
    if weights is not None and not Path(str(weights)).exists():
        raise HarnessError(f"family.weights={weights} does not exist")
    run = cfg.run
    device = resolve_device(str(run.device))
    dtype = resolve_dtype(str(run.dtype), device)
    defaults = family.defaults(variant, scale)
    steps = whole_number("run.steps", run.steps if run.steps is not None else defaults.steps, 1)
    height = whole_number("run.height", run.height if run.height is not None else defaults.height, 1)
    width = whole_number("run.width", run.width if run.width is not None else defaults.width, 1)
    frames = run.frames if run.frames is not None else defaults.frames
    family.check_size(height, width, frames)
    seed = whole_number("run.seed", run.seed, 0)
    strategy_cls = STRATEGIES.get(cfg.strategy.name)
    strategy_params = strategy_parameters(strategy_cls, OmegaConf.to_container(cfg.strategy))
    strategy = strategy_cls(**strategy_params)
    budget = run.get("vram_budget_gb")
    budget = gigabytes("run.vram_budget_gb", budget) if budget is not None else None
    return JobSettings(
        family=family,
        spec=BuildSpec(variant, scale, dtype, device, Path(str(weights)) if weights else None, seed),
        args=GenerateArgs(steps, height, width, frames, seed, str(run.prompt)),
        strategy=strategy, strategy_params=strategy_params,
        warmup=whole_number("run.warmup", run.warmup, 0), repeats=whole_number("run.repeats", run.repeats, 1),
        vram_budget_gb=budget, build_on=resolve_build_on(str(run.get("build_on", "auto"))))
