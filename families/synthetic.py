"""Random-weight modules built straight in the target dtype on the target device."""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator, TypeVar

import torch
from torch import nn

from families.base import BuildSpec

M = TypeVar("M", bound=nn.Module)


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


class ModuleBuilder:
    """Builds each module under a seed of its own, in `spec.dtype` on `spec.weights_device` (no fp32 copy on the way)."""

    def __init__(self, spec: BuildSpec) -> None:
        self.spec = spec
        self._count = 0

    def __call__(self, factory: Callable[[], M]) -> M:
        self._count += 1
        torch.manual_seed(self.spec.seed * 1000 + self._count)
        with default_dtype(self.spec.dtype), torch.device(self.spec.weights_device):
            module = factory()
        if self.spec.weights_device.type != "meta":
            fill_uninitialized(module)
        return module.eval().requires_grad_(False)


def fill_uninitialized(module: nn.Module) -> None:
    """Replace NaN or infinite values left by `torch.empty` initialisers with ones."""
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                tensor.copy_(torch.ones_like(tensor))


def count_parameters(module: nn.Module) -> int:
    """Unique parameters plus persistent floating buffers (SD3's pos_embed is stored in checkpoints)."""
    seen: set[int] = set()
    total = 0
    for tensor in [*module.parameters(), *module.buffers()]:
        if id(tensor) not in seen and tensor.is_floating_point():
            seen.add(id(tensor))
            total += tensor.numel()
    return total
