"""The offload engine: packs weights, places them by plan, and wires residency and streaming to the pipeline."""
from __future__ import annotations

import logging
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import psutil
import torch

from torch import nn

from families.base import Bundle, Component
from families.units import DEFAULT_UNIT_BYTES, module_bytes, split_by_size
from strategies.base import ApplyContext, Handle
from strategies.engine.copy_backend import make_backend
from strategies.engine.hooks import HookSet
from strategies.engine.ledger import Ledger
from strategies.engine.memory import BufferPool
from strategies.engine.packing import PackedGroup, Placeholders, exclusive_tensors, unique_tensors
from strategies.engine.residency import Residency
from strategies.engine.streamer import Streamer

log = logging.getLogger(__name__)
DECODER_PARTS = 8  # a streamed decoder's parts hold at most this fraction of it (or one module of leaves)


@dataclass(frozen=True)
class Plan:
    """Where weights live: components reloaded on entry, units streamed, units kept resident."""

    reload_components: bool
    stream: bool
    depth: int = 0
    resident_units: int = 0
    resident_bytes: int | None = None
    placement: str = "even"
    stream_encoders: bool = False


class PinBudget:
    """Pins host buffers until a cap (a fraction of RAM); the rest stay pageable, with a warning."""

    def __init__(self, device: torch.device, fraction: float) -> None:
        self.enabled = device.type == "cuda"
        self.left = int(psutil.virtual_memory().total * fraction)
        self.pinned_bytes = 0
        self.pageable_bytes = 0

    def take(self, nbytes: int) -> bool:
        if self.enabled and nbytes <= self.left:
            self.left -= nbytes
            self.pinned_bytes += nbytes
            return True
        self.pageable_bytes += nbytes
        return False

    def warn_if_capped(self) -> None:
        if self.enabled and self.pageable_bytes:
            warnings.warn(f"pinned memory cap reached: {self.pageable_bytes / 2**30:.2f} GiB stay pageable "
                          f"(raise strategy.pin_memory_fraction to pin more)")


def choose_resident(sizes: list[int], count: int, placement: str, budget_bytes: int | None = None) -> set[int]:
    """Indices of the units kept on the device: the largest ones, or evenly spaced ones; with `budget_bytes`,
    the most units that placement can choose within that many bytes (`count` is ignored)."""
    if budget_bytes is not None:
        choices = (choose_resident(sizes, n, placement) for n in range(len(sizes), 0, -1))
        return next((chosen for chosen in choices if sum(sizes[i] for i in chosen) <= budget_bytes), set())
    if count <= 0:
        return set()
    if placement == "largest":
        return set(sorted(range(len(sizes)), key=lambda i: (-sizes[i], i))[:count])
    step = len(sizes) / count
    return {int(i * step + step / 2) for i in range(count)}


def release_cached_memory() -> None:
    """Return cached device memory and cached pinned host blocks: several strategies applied in turn would
    otherwise keep every generation of pinned buffers (tens of GiB at full scale) in the host allocator's cache."""
    torch.cuda.empty_cache()
    for name in ("_host_emptyCache", "_accelerator_emptyHostCache"):
        if hasattr(torch._C, name):
            getattr(torch._C, name)()
            return


class EngineHandle(Handle):
    """One applied plan; `remove()` restores every tensor from its host copy."""

    def __init__(self, bundle: Bundle, ctx: ApplyContext, plan: Plan) -> None:
        self.bundle = bundle
        self.plan = plan
        self.device = ctx.device
        self.ledger = Ledger(ctx.vram_budget_bytes)
        self.hooks = HookSet()
        self.placeholders = Placeholders(ctx.device)
        self.pool = BufferPool(ctx.device)
        self.backend = make_backend(ctx.device, ctx.copy_timeout_s, ctx.copy_delay)
        self.pins = PinBudget(ctx.device, ctx.pin_memory_fraction)
        self.groups: list[PackedGroup] = []
        self.resident_buffers: list[torch.Tensor] = []
        self.streamer: Streamer | None = None
        self.resident_units = 0
        self.resident_bytes = 0
        self.residency: Residency | None = None
        try:
            self._install()
        except BaseException:
            self.remove()
            raise
        self.pins.warn_if_capped()
        if ctx.device.type == "cuda":
            torch.cuda.empty_cache()

    def _pack(self, name: str, tensors: list[torch.Tensor]) -> PackedGroup:
        nbytes = sum(t.numel() * t.element_size() for t in tensors)
        group = PackedGroup(name, tensors, pin=self.pins.take(nbytes))
        self.groups.append(group)
        group.detach(self.placeholders)
        return group

    def _pack_modules(self, modules: list[tuple[Component, list[tuple[str, nn.Module]]]],
                      claimed: set[int]) -> list[tuple[str, PackedGroup, nn.Module]]:
        """(owner, group, module): each listed module's own tensors (unclaimed, unshared) packed in a group."""
        packed = []
        for component, named in modules:
            for (name, module), tensors in zip(named, exclusive_tensors([m for _, m in named], claimed)):
                if tensors:
                    packed.append((component.name, self._pack(f"{component.name}.{name}", tensors), module))
        return packed

    def _install(self) -> None:
        claimed: set[int] = set()
        streamed_units = self._streamed_units()
        units = self._pack_modules(streamed_units, claimed)
        owners = [owner for owner, _, _ in units]
        unit_groups = [group for _, group, _ in units]
        unit_modules = [module for _, _, module in units]
        parts = self._pack_modules(self._decoder_parts(), claimed)
        component_groups = {}
        for component in self.bundle.components:
            tensors = unique_tensors([component.module], claimed)
            if tensors:
                component_groups[component.name] = self._pack(component.name, tensors)
        # only denoiser units stay: they run every step, a streamed encoder's blocks run once per generation
        denoisers = {c.name for c in self.bundle.denoisers}
        candidates = [i for i, owner in enumerate(owners) if owner in denoisers]
        chosen = choose_resident([unit_groups[i].nbytes for i in candidates], self.plan.resident_units,
                                 self.plan.placement, self.plan.resident_bytes)
        resident = {candidates[i] for i in chosen}
        self.resident_units = len(resident)
        self.resident_bytes = sum(unit_groups[i].nbytes for i in resident)
        for index in sorted(resident):
            self._keep_resident(unit_groups[index])
        streamed = [i for i in range(len(unit_groups)) if i not in resident]
        if self.plan.reload_components:
            groups = component_groups | {group.name: group for _, group, _ in parts}
            self.residency = Residency(groups, self.pool, self.backend, self.ledger, self.placeholders)
            for _, group, module in parts:
                self.hooks.around_forward(module, before=lambda n=group.name: self.residency.load(n),
                                          after=lambda n=group.name: self.residency.drop(n))
        else:
            for group in component_groups.values():
                self._keep_resident(group)
        if self.residency or streamed:
            for component in self.bundle.components:
                self.hooks.before_entry(component.module, component.entry_points,
                                        lambda name=component.name: self._enter(name))
        if streamed:
            self.streamer = Streamer([unit_groups[i] for i in streamed], [owners[i] for i in streamed],
                                     self.plan.depth, self.pool, self.backend, self.ledger, self.placeholders)
            for component in {c.name: c for c, _ in streamed_units}.values():
                self.hooks.around_forward(component.module,
                                          before=lambda name=component.name: self.streamer.component_started(name),
                                          after=lambda name=component.name: self.streamer.component_finished(name))
            for position, index in enumerate(streamed):
                self.hooks.around_forward(unit_modules[index],
                                          before=lambda p=position: self.streamer.before_unit(p),
                                          after=lambda p=position: self.streamer.after_unit(p))

    def _enter(self, component: str) -> None:
        """Before any entry point of a component: park the streaming ring if the component streams nothing
        (its memory then serves that component), and load the component's own weights."""
        if self.streamer and component not in self.streamer.components:
            self.streamer.park()
        if self.residency:
            self.residency.enter(component)

    def _streamed_units(self) -> list[tuple[Component, list[tuple[str, nn.Module]]]]:
        """The denoisers' units, and with `stream_encoders` the encoders' blocks (split no coarser than the
        largest denoiser unit, so the slots do not grow)."""
        if not self.plan.stream:
            return []
        streamed = [(c, c.units) for c in self.bundle.denoisers if c.units]
        if self.plan.stream_encoders:
            cap = max((module_bytes(m) for _, units in streamed for _, m in units), default=DEFAULT_UNIT_BYTES)
            streamed += [(c, split_by_size(c.module, cap)) for c in self.bundle.components if c.role == "encoder"]
        return streamed

    def _decoder_parts(self) -> list[tuple[Component, list[tuple[str, nn.Module]]]]:
        """With streaming, a decoder loads part by part, each part as it runs: the decode then holds one part (an
        eighth of the decoder at most, or a single module of leaves) instead of all of it, and a part it never
        calls (a VAE's encoder) never loads. The copies cost milliseconds (FLUX's VAE decoder is 0.09 GiB)."""
        if not (self.plan.stream and self.plan.reload_components):
            return []
        return [(c, split_by_size(c.module, max(module_bytes(c.module) // DECODER_PARTS, 1)))
                for c in self.bundle.components if c.role == "decoder"]

    def _keep_resident(self, group: PackedGroup) -> None:
        self.ledger.allocate(group.nbytes, group.name)
        buffer = self.pool.take(group.nbytes)
        buffer.copy_(group.host)
        group.attach(group.views(buffer))
        self.resident_buffers.append(buffer)

    def stats(self) -> dict[str, Any]:
        self.backend.settle()
        copy = self.backend.stats
        stream = self.streamer.stats if self.streamer else None
        hidden = max(copy.copy_s - copy.wait_s, 0.0)
        return dict(
            peak_weights_bytes=self.ledger.peak_bytes,
            peak_units_resident=self.ledger.peak_units_resident,
            resident_units=self.resident_units if self.plan.stream else None,
            resident_bytes=self.resident_bytes if self.plan.stream else None,
            pinned_bytes=self.pins.pinned_bytes,
            pageable_host_bytes=self.pins.pageable_bytes,
            h2d_bytes=copy.bytes,
            copies=copy.copies,
            copy_s=copy.copy_s,
            exposed_copy_s=copy.wait_s,
            overlap_efficiency=hidden / copy.copy_s if copy.copy_s > 0 else None,
            slot_bytes=self.streamer.slot_bytes * self.streamer.ring if self.streamer else 0,
            streamed_units=len(self.streamer.units) if self.streamer else 0,
            # bytes of units that served the compute: prefetches dropped at a park are copies, not streaming
            streamed_bytes=stream.bytes - stream.discarded_bytes if stream else None,
            **({f"stream_{k}": v for k, v in asdict(stream).items()} if stream else {}),
        )

    def reset_stats(self) -> None:
        self.backend.reset_stats()
        self.ledger.reset_peak()
        if self.streamer:
            self.streamer.stats = type(self.streamer.stats)()

    def remove(self) -> None:
        self.hooks.remove()
        try:
            self.backend.close()
        finally:
            if self.streamer:
                self.streamer.close()
            if self.residency:
                self.residency.close()
            failure = None
            for group in self.groups:
                try:
                    group.restore()
                except RuntimeError as exc:  # every other group is still restored
                    failure = failure or exc
                group.release()
            self.ledger.free(sum(b.numel() for b in self.resident_buffers))
            self.groups.clear()
            self.resident_buffers.clear()
            self.pool.clear()
            if self.device.type == "cuda":
                release_cached_memory()
            if failure is not None:  # raised as it came (an out-of-memory error stays one)
                warnings.warn(f"weights that could not go back to {self.device} stay on the host, values intact")
                raise failure
