"""`none`: every component stays resident on the compute device (the reference for speed and parity)."""
from __future__ import annotations

from typing import Any

import torch

from families.base import Bundle
from families.units import module_bytes
from strategies.base import STRATEGIES, ApplyContext, Handle, Strategy, component_homes, send_home
from strategies.engine.ledger import BudgetExceeded, human_bytes


class ResidentHandle(Handle):
    """Nothing moves while it runs; the weight bytes on the device are those of every component. Components that
    `apply` brought over from the host (a model built there) go back on `remove`."""

    def __init__(self, bundle: Bundle, moved: dict[str, torch.device]) -> None:
        self.bundle = bundle
        self.moved = moved
        self.weights_bytes = sum(module_bytes(c.module) for c in bundle.components)

    def stats(self) -> dict[str, Any]:
        return dict(peak_weights_bytes=self.weights_bytes, pinned_bytes=0, h2d_bytes=0, copies=0)

    def reset_stats(self) -> None:
        """Nothing to reset: the resident weights never change."""

    def remove(self) -> None:
        send_home(self.bundle, self.moved)


@STRATEGIES.register("none")
class NoOffload(Strategy):
    """Keep everything on the device."""

    name = "none"

    def apply(self, bundle: Bundle, ctx: ApplyContext) -> Handle:
        moved = {name: home for name, home in component_homes(bundle).items() if home != ctx.device}
        handle = ResidentHandle(bundle, moved)
        if ctx.vram_budget_bytes is not None and handle.weights_bytes > ctx.vram_budget_bytes:
            raise BudgetExceeded(f"resident weights need {human_bytes(handle.weights_bytes)}, "
                                 f"budget {human_bytes(ctx.vram_budget_bytes)}")
        try:
            for component in bundle.components:
                if any(t.device != ctx.device for t in [*component.module.parameters(), *component.module.buffers()]):
                    component.module.to(ctx.device)
        except BaseException:
            handle.remove()
            raise
        return handle
