"""Strategy and Handle: what every offload strategy offers the harness."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import torch

from families.base import Bundle
from harness.registry import Registry

STRATEGIES: Registry[type["Strategy"]] = Registry("strategy", "strategies")
SHARED_KNOBS = ("prefetch_depth", "resident_units", "resident_gb", "placement", "stream_encoders")


@dataclass(frozen=True)
class ApplyContext:
    """Settings of the run that a strategy needs besides its own parameters."""

    device: torch.device
    pin_memory_fraction: float = 0.5
    copy_timeout_s: float = 120.0
    copy_delay: Callable[[], float] | None = None
    vram_budget_bytes: int | None = None


def component_homes(bundle: Bundle) -> dict[str, torch.device]:
    """The device each component's weights are on now (that of its first tensor), to send them back there."""
    return {c.name: next(iter([*c.module.parameters(), *c.module.buffers()])).device for c in bundle.components}


def send_home(bundle: Bundle, homes: dict[str, torch.device]) -> None:
    """Move each component listed in `homes` back to its device."""
    for component in bundle.components:
        if component.name in homes:
            component.module.to(homes[component.name])


class Handle(ABC):
    """An applied strategy: its measurements, and the way back to the untouched pipeline."""

    @abstractmethod
    def stats(self) -> dict[str, Any]:
        """Flat measurements since the last reset (bytes moved, peak weight bytes, ...)."""

    @abstractmethod
    def reset_stats(self) -> None:
        """Start a new measurement window."""

    @abstractmethod
    def remove(self) -> None:
        """Restore every weight bit for bit on its original device and take every hook off."""


class Strategy(ABC):
    """An offload strategy; parameters come from `conf/strategy/<name>.yaml`."""

    name: ClassVar[str]
    lossless: ClassVar[bool] = True
    knobs: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def apply(self, bundle: Bundle, ctx: ApplyContext) -> Handle:
        """Install the strategy on the bundle's pipeline."""

    def check_device(self, device: torch.device) -> None:
        """Raise SkipJob if this strategy cannot run on `device` (checked before anything is built)."""

    def describe(self) -> dict[str, Any]:
        """Strategy parameters recorded in the result row."""
        return {}
