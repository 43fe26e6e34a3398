"""Streams units through a fixed ring of device slots, prefetching `depth` units ahead of compute."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from strategies.engine.copy_backend import CopyBackend
from strategies.engine.ledger import Ledger
from strategies.engine.memory import BufferPool
from strategies.engine.packing import PackedGroup, Placeholders


@dataclass
class _Slot:
    buffer: torch.Tensor
    views: dict[int, list[torch.Tensor]] = field(default_factory=dict)
    unit: int | None = None
    fence: Any = None
    release: Any = None
    in_use: bool = False
    used: bool = False


@dataclass
class StreamStats:
    """What the streamer did since the last reset."""

    loads: int = 0
    bytes: int = 0
    sync_loads: int = 0
    out_of_order: int = 0
    parks: int = 0
    discarded_bytes: int = 0


class Streamer:
    """The scheduler: records each component's unit order on its first call, then keeps the next `depth`
    units of that order (wrapping around into the next call) in flight while the current one computes.

    A unit called out of the recorded order is loaded synchronously and counted. While a component that
    streams nothing runs (a VAE decoding, an encoder loaded whole), the ring is parked: its memory serves that
    component, and it is allocated again when a streamed unit next runs.
    """

    def __init__(self, units: list[PackedGroup], owner: list[str], depth: int, pool: BufferPool,
                 backend: CopyBackend, ledger: Ledger, placeholders: Placeholders) -> None:
        self.units = units
        self.owner = owner
        self.depth = depth
        self.backend = backend
        self.ledger = ledger
        self.placeholders = placeholders
        self.pool = pool
        self.stats = StreamStats()
        self.slot_bytes = max(u.nbytes for u in units)
        self.ring = min(depth + 1, len(units))
        self.slots: list[_Slot] = []
        self._where: dict[int, _Slot] = {}
        self._allocate_ring()
        components = dict.fromkeys(owner)
        self.components = set(components)
        self._listed = {c: [i for i, o in enumerate(owner) if o == c] for c in components}
        self._order: dict[str, list[int]] = {}
        self._recording: dict[str, list[int]] = {}
        self._cursor = dict.fromkeys(components, 0)
        self._calls: dict[str, int] = {}
        self._calls_per_cycle: dict[str, int] = {}

    def _allocate_ring(self) -> None:
        """The slots, each as large as the largest unit; a copy into a fresh slot waits for the compute issued
        so far (its memory may have just served that compute)."""
        for _ in range(self.ring):
            self.ledger.allocate(self.slot_bytes, "a streaming slot")
            self.slots.append(_Slot(self.pool.take(self.slot_bytes), release=self.backend.release_fence()))

    def park(self) -> None:
        """Free the ring while a component that streams nothing runs. The compute first waits for copies still
        in flight, so the memory is not reused under them.

        How many calls each component made since the last park is learnt, so that its last call of the next
        cycle does not wrap its prefetch around into a call that comes only after the ring is parked again."""
        self._calls_per_cycle.update(self._calls)
        self._calls.clear()
        if not self.slots or any(slot.in_use for slot in self.slots):
            return
        for slot in self.slots:
            if slot.fence is not None:
                self.backend.wait(slot.fence)
            if slot.unit is not None and not slot.used:
                self.stats.discarded_bytes += self.units[slot.unit].nbytes
        self.close()
        self.stats.parks += 1

    # -- component boundaries: the first call of each component records its unit order
    def component_started(self, component: str) -> None:
        self._calls[component] = self._calls.get(component, 0) + 1
        if component not in self._order:
            self._recording[component] = []

    def component_finished(self, component: str) -> None:
        recorded = self._recording.pop(component, None)
        if recorded:
            self._order[component] = recorded
            self._cursor[component] = 0

    # -- unit hooks
    def before_unit(self, unit: int) -> None:
        if not self.slots:
            self._allocate_ring()
        component = self.owner[unit]
        if component in self._recording:
            self._recording[component].append(unit)
        sequence = self._order.get(component, self._listed[component])
        position = self._locate(component, sequence, unit)
        last_call = self._calls.get(component) == self._calls_per_cycle.get(component)
        reach = min(self.depth + 1, len(sequence) - position) if last_call and position is not None else self.depth + 1
        window = [sequence[(position + j) % len(sequence)] for j in range(reach)] if position is not None else [unit]
        slot = self._where.get(unit)
        if slot is None:
            self.stats.sync_loads += 1
            slot = self._load(unit, protect=set(window))
        self.backend.wait(slot.fence)
        slot.in_use = True
        slot.used = True
        self.units[unit].attach(slot.views[unit])
        for upcoming in window[1:]:
            if upcoming not in self._where and not self._prefetch(upcoming, set(window)):
                break

    def after_unit(self, unit: int) -> None:
        slot = self._where[unit]
        self.units[unit].detach(self.placeholders)
        slot.in_use = False
        slot.release = self.backend.release_fence()

    # -- internals
    def _locate(self, component: str, sequence: list[int], unit: int) -> int | None:
        cursor = self._cursor[component] % len(sequence)
        if sequence[cursor] == unit:
            position = cursor
        elif unit in sequence:
            position = sequence.index(unit)
            if component in self._order:
                self.stats.out_of_order += 1
        else:
            if component in self._order:
                self.stats.out_of_order += 1
            return None
        self._cursor[component] = (position + 1) % len(sequence)
        return position

    def _free_slot(self, protect: set[int]) -> _Slot | None:
        """An empty slot, else one whose unit is idle and outside the window."""
        empty = [s for s in self.slots if s.unit is None]
        if empty:
            return empty[0]
        idle = [s for s in self.slots if not s.in_use and s.unit not in protect]
        return idle[0] if idle else None

    def _prefetch(self, unit: int, protect: set[int]) -> bool:
        slot = self._free_slot(protect)
        if slot is None:
            return False
        self._fill(slot, unit)
        return True

    def _load(self, unit: int, protect: set[int]) -> _Slot:
        slot = self._free_slot(protect) or next(s for s in self.slots if not s.in_use)
        self._fill(slot, unit, blocking=True)
        return slot

    def _fill(self, slot: _Slot, unit: int, blocking: bool = False) -> None:
        if slot.unit is not None:
            del self._where[slot.unit]
            self.ledger.unit_evicted()
        group = self.units[unit]
        if unit not in slot.views:
            slot.views[unit] = group.views(slot.buffer)
        slot.fence = self.backend.copy(slot.buffer[:group.nbytes], group.host, slot.release, blocking)
        slot.unit = unit
        slot.used = False
        self._where[unit] = slot
        self.ledger.unit_loaded()
        self.stats.loads += 1
        self.stats.bytes += group.nbytes

    def close(self) -> None:
        for slot in self.slots:
            self.ledger.free(self.slot_bytes)
            if slot.unit is not None:
                self.ledger.unit_evicted()
            self.pool.give(slot.buffer)
        self.slots.clear()
        self._where.clear()
