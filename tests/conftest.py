"""Shared helpers: tiny bundles on the CPU and a way to run one strategy on them."""
from __future__ import annotations

import functools
from typing import Any

import pytest
import torch

from families.base import Bundle, GenerateArgs, build_with_defaults
from strategies.base import STRATEGIES, ApplyContext

CPU = torch.device("cpu")
CORE_STRATEGIES = [("none", {}), ("drop_and_reload", {}), ("block_stream", {}),
                   ("block_prefetch", {"prefetch_depth": 2})]


def build(family: str, scale: str = "tiny", variant: str | None = None) -> tuple[Bundle, GenerateArgs]:
    """A fresh CPU bundle and the family's default generation arguments at that scale."""
    return build_with_defaults(family, scale, CPU, torch.float32, variant)


@functools.cache
def tiny(family: str) -> tuple[Bundle, GenerateArgs, torch.Tensor]:
    """A tiny bundle shared by tests (they must leave it unchanged), its args and its resident output."""
    bundle, args = build(family)
    return bundle, args, bundle.generate(args)


def run_with(bundle: Bundle, args: GenerateArgs, strategy: str, params: dict[str, Any] | None = None,
             **ctx: Any) -> tuple[torch.Tensor, dict[str, Any]]:
    """Apply a strategy, generate once, read its stats, remove it."""
    handle = STRATEGIES.get(strategy)(**(params or {})).apply(bundle, ApplyContext(CPU, **ctx))
    try:
        output = bundle.generate(args)
        return output, handle.stats()
    finally:
        handle.remove()


def weights_of(bundle: Bundle) -> dict[str, torch.Tensor]:
    """Every parameter and buffer of every component, cloned, by qualified name."""
    return {f"{c.name}.{n}": t.detach().clone() for c in bundle.components
            for n, t in [*c.module.named_parameters(), *c.module.named_buffers()]}


def assert_same_weights(before: dict[str, torch.Tensor], bundle: Bundle) -> None:
    after = weights_of(bundle)
    assert before.keys() == after.keys()
    for name, tensor in before.items():
        assert after[name].device == tensor.device, name
        assert after[name].dtype == tensor.dtype, name
        assert torch.equal(after[name], tensor), name


@pytest.fixture(params=["sd15", "flux"])
def core_family(request: pytest.FixtureRequest) -> str:
    return request.param
