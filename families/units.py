"""Splitting a component into streamable units."""
from __future__ import annotations

from torch import nn


def module_bytes(module: nn.Module) -> int:
    """Bytes of the unique parameters and buffers of a module."""
    seen: set[int] = set()
    total = 0
    for tensor in [*module.parameters(), *module.buffers()]:
        if id(tensor) not in seen:
            seen.add(id(tensor))
            total += tensor.numel() * tensor.element_size()
    return total


def split_by_size(module: nn.Module, max_bytes: int, prefix: str = "") -> list[tuple[str, nn.Module]]:
    """The coarsest submodules of at most `max_bytes`; larger ones are split further.

    Parameters held directly by a split module stay with the component (the resident remainder).
    """
    units: list[tuple[str, nn.Module]] = []
    for name, child in module.named_children():
        qualified = f"{prefix}{name}"
        size = module_bytes(child)
        if size == 0:
            continue
        if size <= max_bytes or not any(True for _ in child.children()):
            units.append((qualified, child))
        else:
            units.extend(split_by_size(child, max_bytes, qualified + "."))
    return units


def block_lists(module: nn.Module, *names: str) -> list[tuple[str, nn.Module]]:
    """Every block of the named ModuleLists, in list order (e.g. `transformer_blocks`)."""
    units: list[tuple[str, nn.Module]] = []
    for name in names:
        for index, block in enumerate(getattr(module, name)):
            units.append((f"{name}.{index}", block))
    return units
