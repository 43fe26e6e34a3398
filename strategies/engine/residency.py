"""Drop and reload: a component's weights sit on the compute device only while its stage runs."""
from __future__ import annotations

import torch

from strategies.engine.copy_backend import CopyBackend
from strategies.engine.ledger import Ledger
from strategies.engine.memory import BufferPool
from strategies.engine.packing import PackedGroup, Placeholders


class Residency:
    """Loads a component's packed weights when it is entered and drops every other loaded component. A component
    may also have parts (a decoder's blocks), each on the device only while it runs."""

    def __init__(self, groups: dict[str, PackedGroup], pool: BufferPool, backend: CopyBackend, ledger: Ledger,
                 placeholders: Placeholders) -> None:
        self.groups = groups
        self.pool = pool
        self.backend = backend
        self.ledger = ledger
        self.placeholders = placeholders
        self.loaded: dict[str, torch.Tensor] = {}

    def enter(self, name: str) -> None:
        """Called before any entry point of component `name` runs: every other component goes, even when this one
        has nothing of its own to load (all its weights in parts or units)."""
        if name in self.loaded:
            return
        for other in list(self.loaded):
            self.drop(other)
        if name in self.groups:
            self.load(name)

    def load(self, name: str) -> None:
        """Copy group `name` to the device unless it is there. The copy waits for the compute issued so far: the
        fresh buffer may reuse memory that queued kernels still read."""
        if name in self.loaded:
            return
        group = self.groups[name]
        self.ledger.allocate(group.nbytes, name)
        buffer = self.pool.take(group.nbytes)
        self.backend.wait(self.backend.copy(buffer, group.host, self.backend.release_fence(), blocking=True))
        group.attach(group.views(buffer))
        self.loaded[name] = buffer

    def drop(self, name: str) -> None:
        if name not in self.loaded:
            return
        self.groups[name].detach(self.placeholders)
        self.pool.give(self.loaded.pop(name))
        self.ledger.free(self.groups[name].nbytes)

    def close(self) -> None:
        for name in list(self.loaded):
            self.drop(name)
