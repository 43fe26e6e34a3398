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


def is_leaf(module: nn.Module) -> bool:
    return not any(True for _ in module.children())


def split_by_size(module: nn.Module, max_bytes: int) -> list[tuple[str, nn.Module]]:
    """The coarsest submodules of at most `max_bytes`; larger ones are split further, down to the modules whose
    children are all leaves (their forward often reads a child's weight itself: CLIP's embeddings read the
    position table's length), and to single leaves. A ModuleList or ModuleDict is never a unit: the parent calls
    its members, never the container, so the container's hooks would not run.

    Parameters held directly by a split module stay with the component (the resident remainder). A module
    reachable under two names (T5's `shared` and `encoder.embed_tokens`) becomes one unit, and a subtree
    holding an earlier unit is split further, so units never nest.
    """
    units: list[tuple[str, nn.Module]] = []
    taken: set[int] = set()

    def visit(parent: nn.Module, prefix: str) -> None:
        for name, child in parent.named_children():
            inside = {id(m) for m in child.modules()}
            size = module_bytes(child)
            if id(child) in taken or size == 0:
                continue
            leaf = is_leaf(child)
            fits = size <= max_bytes or all(is_leaf(m) for m in child.children())
            container = isinstance(child, (nn.ModuleList, nn.ModuleDict))  # never called: its hooks would not run
            if leaf or (fits and not container and not inside & taken):
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
