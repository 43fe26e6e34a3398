"""The CPU copy backend: which copies run where, in what order, and what they leave behind."""
from __future__ import annotations

import os
import threading
import time

import pytest
import torch

import strategies.engine.copy_backend as copy_backend
from families.base import GenerateArgs
from strategies.base import ApplyContext
from strategies.engine.copy_backend import ThreadBackend, raw_copy
from strategies.engine.offload import EngineHandle, Plan
from strategies.engine.testbed import stack_bundle
from tests.conftest import CPU

MIB = 1 << 20


def os_threads() -> set[str]:
    """Ids of this process's OS threads (threads of earlier tests may end meanwhile; only new ones count)."""
    return set(os.listdir("/proc/self/task"))


@pytest.fixture
def slow_thread_copies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Copies on the copy thread take 0.3 s, so the order of copies shows in the result."""
    def slow(dst: torch.Tensor, src: torch.Tensor) -> None:
        time.sleep(0.3)
        raw_copy(dst, src)
    monkeypatch.setattr(copy_backend, "raw_copy", slow)


def filled(value: int, nbytes: int = 2 * MIB) -> torch.Tensor:
    return torch.full((nbytes,), value, dtype=torch.uint8)


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads through Linux's /proc")
def test_streaming_starts_no_thread_beyond_its_copy_thread() -> None:
    """ATen's copy on the copy thread would start a second OpenMP team that outlives the engine and, with more
    OpenMP threads than cores, slows every later kernel of the process."""
    bundle = stack_bundle([4096] * 6, [list(range(6))], width=256)
    args = GenerateArgs(3, 0, 0, None, seed=0)
    bundle.generate(args)
    before = os_threads()
    handle = EngineHandle(bundle, ApplyContext(CPU), Plan(reload_components=True, stream=True, depth=2))
    try:
        bundle.generate(args)
        assert handle.stats()["copies"] > 0
        assert len(os_threads() - before) == 1, "only the copy thread"
    finally:
        handle.remove()
    deadline = time.monotonic() + 2  # a joined thread leaves /proc a moment after join() returns (CI saw it once)
    while os_threads() - before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not os_threads() - before, "a thread outlived the engine"


def test_blocking_copies_run_in_the_caller_and_count_as_exposed() -> None:
    backend = ThreadBackend()
    try:
        dst, src = filled(0), filled(7)
        fence = backend.copy(dst, src, None, blocking=True)
        assert fence.done.is_set() and torch.equal(dst, src)
        assert backend.stats.wait_s == backend.stats.copy_s > 0
        assert backend.stats.bytes == 2 * MIB
    finally:
        backend.close()


def test_an_inline_copy_waits_for_a_queued_copy_into_the_same_memory(slow_thread_copies: None) -> None:
    backend = ThreadBackend()
    try:
        dst = filled(0)
        queued = backend.copy(dst, filled(1), None)
        assert not queued.done.is_set()
        backend.copy(dst, filled(2), None, blocking=True)
        backend.wait(queued)
        assert torch.equal(dst, filled(2)), "the copy issued first landed last"
    finally:
        backend.close()


def test_an_inline_copy_into_other_memory_does_not_wait(slow_thread_copies: None) -> None:
    backend = ThreadBackend()
    try:
        queued = backend.copy(filled(0), filled(1), None)
        small, other = torch.zeros(16, dtype=torch.uint8), torch.full((16,), 3, dtype=torch.uint8)
        backend.copy(small, other, None)
        assert torch.equal(small, other) and not queued.done.is_set()
        backend.wait(queued)
    finally:
        backend.close()


def test_raw_copy_refuses_mismatched_tensors() -> None:
    with pytest.raises(ValueError, match="contiguous tensors of the same size"):
        raw_copy(torch.empty(8, dtype=torch.uint8), torch.empty(9, dtype=torch.uint8))
    with pytest.raises(ValueError, match="contiguous tensors of the same size"):
        raw_copy(torch.empty(4, 4)[:, 0], torch.empty(4))


def test_the_copy_thread_copies_while_the_caller_computes(slow_thread_copies: None) -> None:
    backend = ThreadBackend()
    try:
        start = time.perf_counter()
        fence = backend.copy(filled(0), filled(1), None)
        assert time.perf_counter() - start < 0.2
        assert threading.active_count() >= 2
        backend.wait(fence)
        assert backend.stats.copy_s >= 0.3 and backend.stats.wait_s > 0.2
    finally:
        backend.close()
