"""`drop_and_reload`: each component is on the device only while its stage runs."""
from __future__ import annotations

from families.base import Bundle
from strategies.base import STRATEGIES, ApplyContext, Handle, Strategy
from strategies.engine.offload import EngineHandle, Plan


@STRATEGIES.register("drop_and_reload")
class DropAndReload(Strategy):
    """Load a component whole when the pipeline enters it; drop the others."""

    name = "drop_and_reload"

    def apply(self, bundle: Bundle, ctx: ApplyContext) -> Handle:
        return EngineHandle(bundle, ctx, Plan(reload_components=True, stream=False))
