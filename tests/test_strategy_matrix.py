"""Every family x every core strategy on tiny models: finite output, bit-exact against resident."""
from __future__ import annotations

import pytest
import torch

from families.base import FAMILIES
from tests.conftest import CORE_STRATEGIES, run_with, tiny


@pytest.mark.parametrize("strategy,params", CORE_STRATEGIES, ids=[s for s, _ in CORE_STRATEGIES])
@pytest.mark.parametrize("family", FAMILIES.names())
def test_strategy_is_exact(family: str, strategy: str, params: dict) -> None:
    bundle, args, reference = tiny(family)
    assert torch.isfinite(reference).all()
    output, stats = run_with(bundle, args, strategy, params)
    assert torch.equal(output, reference)
    if strategy in ("block_stream", "block_prefetch"):
        assert stats["streamed_units"] > 0
        assert stats["h2d_bytes"] > 0


@pytest.mark.parametrize("family", FAMILIES.names())
def test_streaming_the_encoders_too_is_exact(family: str) -> None:
    """Tiny encoders split into small units: a ModuleList unit (never called) left T5's and the LLMs' layers
    unloaded, and CLIP's embeddings split in two read an unloaded position table (five families failed)."""
    bundle, args, reference = tiny(family)
    output, stats = run_with(bundle, args, "block_prefetch", {"prefetch_depth": 2, "stream_encoders": True})
    assert torch.equal(output, reference)
    assert stats["streamed_units"] > sum(len(c.units) for c in bundle.denoisers)
