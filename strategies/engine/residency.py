"""Drop and reload: a component's weights sit on the compute device only while its stage runs."""
from __future__ import annotations

import torch

from strategies.engine.copy_backend import CopyBackend
from strategies.engine.ledger import Ledger
from strategies.engine.memory import BufferPool
from strategies.engine.packing import PackedGroup, Placeholders


class Residency:
    """Loads a component's packed weights when it is entered and drops every other loaded component."""

    def __init__(self, groups: dict[str, PackedGroup], pool: BufferPool, backend: CopyBackend, ledger: Ledger,
                 placeholders: Placeholders) -> None:
        self.groups = groups
        self.pool = pool
        self.backend = backend
        self.ledger = ledger
        self.placeholders = placeholders
        self.loaded: dict[str, torch.Tensor] = {}

    def enter(self, name: str) -> None:
        """Called before any entry point of component `name` runs. The copy waits for the compute issued so far:
        the fresh buffer may reuse memory that queued kernels still read."""
        if name in self.loaded or name not in self.groups:
            return
        for other in list(self.loaded):
            self.drop(other)
        group = self.groups[name]
        self.ledger.allocate(group.nbytes, f"component {name}")
        buffer = self.pool.take(group.nbytes)
        self.backend.wait(self.backend.copy(buffer, group.host, self.backend.release_fence(), blocking=True))
        group.attach(group.views(buffer))
        self.loaded[name] = buffer

    def drop(self, name: str) -> None:
        self.groups[name].detach(self.placeholders)
        self.pool.give(self.loaded.pop(name))
        self.ledger.free(self.groups[name].nbytes)

    def close(self) -> None:
        for name in list(self.loaded):
            self.drop(name)
