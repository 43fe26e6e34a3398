"""Packing a module's tensors into one contiguous host buffer, and pointing them at copies of it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch
from torch import nn

from strategies.engine.host_memory import HostBuffer

ALIGN = 256


def exclusive_tensors(modules: list[nn.Module], claimed: set[int]) -> list[list[torch.Tensor]]:
    """Per module, its tensors not yet claimed and not shared with another of `modules` (tied weights stay
    with the component's remainder, which is loaded whenever the component runs); claims them."""
    per_module = [unique_tensors([m], set(claimed)) for m in modules]
    owners: dict[int, int] = {}
    for tensors in per_module:
        for tensor in tensors:
            owners[id(tensor)] = owners.get(id(tensor), 0) + 1
    exclusive = [[t for t in tensors if owners[id(t)] == 1] for tensors in per_module]
    claimed.update(id(t) for tensors in exclusive for t in tensors)
    return exclusive


def unique_tensors(modules: Iterable[nn.Module], claimed: set[int]) -> list[torch.Tensor]:
    """Parameters and buffers of `modules` not yet in `claimed` (each shared tensor once); claims them."""
    found = []
    for module in modules:
        for tensor in [*module.parameters(), *module.buffers()]:
            if id(tensor) not in claimed:
                claimed.add(id(tensor))
                found.append(tensor)
    return found


@dataclass(frozen=True)
class _Entry:
    tensor: torch.Tensor
    offset: int
    nbytes: int
    shape: torch.Size
    dtype: torch.dtype
    home: torch.device


class Placeholders:
    """Empty tensors that detached weights point to: a stray use fails loudly instead of reading stale data."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._cache: dict[torch.dtype, torch.Tensor] = {}

    def __call__(self, dtype: torch.dtype) -> torch.Tensor:
        if dtype not in self._cache:
            self._cache[dtype] = torch.empty(0, dtype=dtype, device=self.device)
        return self._cache[dtype]


class PackedGroup:
    """The tensors of one unit (or component remainder) in one contiguous host buffer, 256-byte aligned."""

    def __init__(self, name: str, tensors: list[torch.Tensor], pin: bool) -> None:
        self.name = name
        entries, offset = [], 0
        for tensor in tensors:
            nbytes = tensor.numel() * tensor.element_size()
            entries.append(_Entry(tensor, offset, nbytes, tensor.shape, tensor.dtype, tensor.device))
            offset += -(-nbytes // ALIGN) * ALIGN
        self.entries = entries
        self.nbytes = offset
        self.buffer = HostBuffer(self.nbytes, pin)
        self.host = self.buffer.tensor
        self.host_views = self.views(self.host)
        for entry, view in zip(entries, self.host_views):
            view.copy_(entry.tensor.data)

    def views(self, buffer: torch.Tensor) -> list[torch.Tensor]:
        """Typed views of each tensor inside `buffer` (the host buffer or a device slot)."""
        return [buffer[e.offset:e.offset + e.nbytes].view(e.dtype).view(e.shape) for e in self.entries]

    def attach(self, views: list[torch.Tensor]) -> None:
        for entry, view in zip(self.entries, views):
            entry.tensor.data = view

    def detach(self, placeholders: Placeholders) -> None:
        """Parameters point to empty placeholders (a stray use fails loudly); buffers to their host copy,
        since pipelines read some (e.g. a VAE's batch-norm statistics) outside the component's calls."""
        for entry, host_view in zip(self.entries, self.host_views):
            is_param = isinstance(entry.tensor, nn.Parameter)
            entry.tensor.data = placeholders(entry.dtype) if is_param else host_view

    def restore(self) -> None:
        """Give every tensor a fresh copy of its original values on its original device. A tensor that cannot go
        home (its device is full, say) keeps a copy on the host, so no value is lost; the first such error is
        raised once every tensor has its values."""
        failure = None
        for entry, view in zip(self.entries, self.host_views):
            try:
                entry.tensor.data = view.to(entry.home, copy=True)
            except RuntimeError as exc:  # torch.OutOfMemoryError among others
                entry.tensor.data = view.clone()
                failure = failure or exc
        if failure is not None:
            raise failure

    def release(self) -> None:
        """Give the host buffer back (after `restore`, once no copy reads it)."""
        self.buffer.release()
