"""Splitting a component into streamable units."""
from __future__ import annotations

from torch import nn


DEFAULT_UNIT_BYTES = 1 << 30


def module_bytes(module: nn.Module) -> int:
    """Bytes of the unique parameters and buffers of a module."""
    seen: set[int] = set()
    total = 0
    for tensor in [*module.parameters(), *module.buffers()]:
        if id(tensor) not in seen:
            seen.add(id(tensor))
            total += tensor.numel() * tensor.element_size()
    return total


def split_by_size(module: nn.Module, max_bytes: int) -> list[tuple[str, nn.Module]]:
    """The coarsest submodules of at most `max_bytes`; larger ones are split further.

    Parameters held directly by a split module stay with the component (the resident remainder). A module
    reachable under two names (T5's `shared` and `encoder.embed_tokens`) becomes one unit, and a subtree
    holding an earlier unit is split further, so units never nest.
    """
    units: list[tuple[str, nn.Module]] = []
    taken: set[int] = set()

    def visit(parent: nn.Module, prefix: str) -> None:
        for name, child in parent.named_children():
            inside = {id(m) for m in child.modules()}
            if id(child) in taken or module_bytes(child) == 0:
                continue
            leaf = not any(True for _ in child.children())
            if leaf or (module_bytes(child) <= max_bytes and not inside & taken):
                units.append((f"{prefix}{name}", child))
                taken.update(inside)
            else:
                visit(child, f"{prefix}{name}.")

    visit(module, "")
    return units


def block_lists(module: nn.Module, *names: str) -> list[tuple[str, nn.Module]]:
    """Every block of the named ModuleLists, in list order (e.g. `transformer_blocks`)."""
    units: list[tuple[str, nn.Module]] = []
    for name in names:
        for index, block in enumerate(getattr(module, name)):
            units.append((f"{name}.{index}", block))
    return units
