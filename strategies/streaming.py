"""`block_stream` and `block_prefetch`: the denoisers' units stream through device slots."""
from __future__ import annotations

from typing import Any

from families.base import Bundle
from harness.errors import HarnessError, gb_to_bytes, gigabytes, whole_number
from strategies.base import SHARED_KNOBS, STRATEGIES, ApplyContext, Handle, Strategy
from strategies.engine.offload import EngineHandle, Plan

PLACEMENTS = ("even", "largest")


class BlockStreaming(Strategy):
    """Stream units `prefetch_depth` ahead; keep `resident_units` of them (or as many as fit in `resident_gb`)
    on the device for good."""

    prefetch_depth: int = 0
    knobs = SHARED_KNOBS

    def __init__(self, prefetch_depth: Any = None, resident_units: Any = 0, resident_gb: Any = None,
                 placement: str = "even", stream_encoders: Any = False) -> None:
        if prefetch_depth is not None:
            self.prefetch_depth = whole_number("strategy.prefetch_depth", prefetch_depth, 0)
        self.resident_units = whole_number("strategy.resident_units", resident_units, 0)
        self.resident_gb = gigabytes("strategy.resident_gb", resident_gb) if resident_gb is not None else None
        if self.resident_units and self.resident_gb is not None:
            raise HarnessError(f"strategy.resident_units={self.resident_units} and strategy.resident_gb="
                               f"{self.resident_gb:g} are both set: use one of them")
        if placement not in PLACEMENTS:
            raise HarnessError(f"strategy.placement={placement!r} is not valid: use one of {', '.join(PLACEMENTS)}")
        self.placement = placement
        if not isinstance(stream_encoders, bool):
            raise HarnessError(f"strategy.stream_encoders={stream_encoders!r} is not valid: use true or false")
        self.stream_encoders = stream_encoders

    def apply(self, bundle: Bundle, ctx: ApplyContext) -> Handle:
        units = sum(len(c.units) for c in bundle.denoisers)
        if self.resident_units > units:
            raise HarnessError(f"strategy.resident_units={self.resident_units} is more than the {units} units of "
                               f"{bundle.family}: use 0..{units}")
        plan = Plan(reload_components=True, stream=True, depth=self.prefetch_depth, resident_units=self.resident_units,
                    resident_bytes=gb_to_bytes(self.resident_gb), placement=self.placement,
                    stream_encoders=self.stream_encoders)
        return EngineHandle(bundle, ctx, plan)

    def describe(self) -> dict[str, Any]:
        keeps_units = self.resident_units or self.resident_gb is not None
        return dict(prefetch_depth=self.prefetch_depth, resident_units=self.resident_units,
                    resident_gb=self.resident_gb, placement=self.placement if keeps_units else None,
                    stream_encoders=self.stream_encoders)


@STRATEGIES.register("block_stream")
class BlockStream(BlockStreaming):
    """One unit at a time: copy, compute, next (no overlap)."""

    name = "block_stream"
    knobs = ("resident_units", "resident_gb", "placement", "stream_encoders")

    def __init__(self, resident_units: Any = 0, resident_gb: Any = None, placement: str = "even",
                 stream_encoders: Any = False) -> None:
        super().__init__(None, resident_units, resident_gb, placement, stream_encoders)


@STRATEGIES.register("block_prefetch")
class BlockPrefetch(BlockStreaming):
    """Copies run `prefetch_depth` units ahead of compute on a side stream (a copy thread on the CPU)."""

    name = "block_prefetch"
    prefetch_depth = 2
