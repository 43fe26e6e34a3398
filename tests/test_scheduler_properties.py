"""Property-based tests of the streaming scheduler on synthetic stacks: random unit sizes, depths and call
orders (repeated and skipped units, orders that change between calls), with or without an encoder that parks
the ring."""
from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
import torch

from families.base import GenerateArgs
from strategies.base import ApplyContext
from strategies.engine.offload import EngineHandle, Plan
from strategies.engine.testbed import stack_bundle
from tests.conftest import assert_same_weights, weights_of

CPU = torch.device("cpu")


@st.composite
def scenarios(draw: st.DrawFn) -> dict:
    n = draw(st.integers(1, 7))
    hiddens = draw(st.lists(st.integers(1, 96), min_size=n, max_size=n))
    orders = draw(st.lists(st.lists(st.integers(0, n - 1), min_size=0, max_size=12), min_size=1, max_size=3))
    return dict(hiddens=hiddens, orders=orders, depth=draw(st.integers(0, 8)), steps=draw(st.integers(1, 4)),
                resident=draw(st.integers(0, n)), placement=draw(st.sampled_from(["largest", "even"])),
                delay_seed=draw(st.integers(0, 1000)), encoder=draw(st.sampled_from([0, 64])))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_streaming_is_exact_bounded_and_clean(case: dict) -> None:
    bundle = stack_bundle(case["hiddens"], case["orders"], encoder_hidden=case["encoder"])
    args = GenerateArgs(case["steps"], 0, 0, None, seed=1)
    reference = bundle.generate(args)
    before = weights_of(bundle)
    rng = random.Random(case["delay_seed"])
    ctx = ApplyContext(CPU, copy_delay=lambda: rng.random() * 0.001, copy_timeout_s=10)
    handle = EngineHandle(bundle, ctx, Plan(reload_components=True, stream=True, depth=case["depth"],
                                            resident_units=case["resident"], placement=case["placement"]))
    ledger = handle.ledger
    try:
        assert torch.equal(bundle.generate(args), reference)
        assert torch.equal(bundle.generate(args), reference)
        stats = handle.stats()
        streamed = stats["streamed_units"]
        assert streamed == len(case["hiddens"]) - case["resident"]
        assert ledger.peak_units_resident <= min(case["depth"] + 1, max(streamed, 1))
        if streamed:
            assert stats["copies"] >= 1
    finally:
        handle.remove()
    assert ledger.units_resident == 0
    assert ledger.current_bytes == 0
    assert_same_weights(before, bundle)


def test_recorded_order_avoids_synchronous_loads() -> None:
    """Blocks called in reverse of their listing: after the first call the recorded order is prefetched."""
    bundle = stack_bundle([32] * 6, [[5, 4, 3, 2, 1, 0]])
    args = GenerateArgs(3, 0, 0, None, seed=0)
    reference = bundle.generate(args)
    handle = EngineHandle(bundle, ApplyContext(CPU), Plan(reload_components=True, stream=True, depth=2))
    try:
        bundle.generate(args)
        handle.reset_stats()
        assert torch.equal(bundle.generate(args), reference)
        stats = handle.stats()
        assert stats["stream_sync_loads"] == 0 and stats["stream_out_of_order"] == 0
    finally:
        handle.remove()


def test_out_of_order_units_are_loaded_and_counted() -> None:
    bundle = stack_bundle([32] * 5, [[0, 1, 2, 3, 4], [0, 3, 1, 4]])
    args = GenerateArgs(4, 0, 0, None, seed=0)
    reference = bundle.generate(args)
    handle = EngineHandle(bundle, ApplyContext(CPU), Plan(reload_components=True, stream=True, depth=1))
    try:
        assert torch.equal(bundle.generate(args), reference)
        stats = handle.stats()
        assert stats["stream_out_of_order"] > 0 and stats["stream_sync_loads"] > 0
    finally:
        handle.remove()
