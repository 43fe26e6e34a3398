"""Asynchronous host-to-device copies: a side CUDA stream ordered by events, or a copy thread on the CPU."""
from __future__ import annotations

import ctypes
import queue
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable

import torch


class CopyTimeout(RuntimeError):
    """A copy did not finish within the engine's timeout."""


@dataclass
class CopyStats:
    """Bytes and time of the copies since the last reset."""

    copies: int = 0
    bytes: int = 0
    copy_s: float = 0.0
    wait_s: float = 0.0


class CopyBackend(ABC):
    """Schedules copies and makes the compute side wait for them."""

    def __init__(self) -> None:
        self.stats = CopyStats()

    @abstractmethod
    def copy(self, dst: torch.Tensor, src: torch.Tensor, after: Any, blocking: bool = False) -> Any:
        """Copy `src` into `dst` once the fence `after` (or None) is reached; return a fence for its end.
        `blocking` says the compute waits for it at once (nothing to overlap with)."""

    @abstractmethod
    def wait(self, fence: Any) -> None:
        """Make subsequent compute wait for `fence` (no host synchronisation on CUDA)."""

    @abstractmethod
    def release_fence(self) -> Any:
        """A fence marking the compute issued so far (a slot may be overwritten once it is reached)."""

    def settle(self) -> None:
        """Fold pending timings into `stats` (synchronises; call outside the timed loop)."""

    def reset_stats(self) -> None:
        self.settle()
        self.stats = CopyStats()

    def close(self) -> None:
        """Finish outstanding copies and release resources."""


class CudaBackend(CopyBackend):
    """Copies on a side stream; the compute stream waits on events, the host never blocks."""

    def __init__(self, device: torch.device) -> None:
        super().__init__()
        self.device = device
        self.stream = torch.cuda.Stream(device)
        self._copy_events: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []
        self._wait_events: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []

    def copy(self, dst: torch.Tensor, src: torch.Tensor, after: Any, blocking: bool = False) -> torch.cuda.Event:
        start, done = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        with torch.cuda.stream(self.stream):
            if after is not None:
                self.stream.wait_event(after)
            start.record(self.stream)
            dst.copy_(src, non_blocking=True)
            done.record(self.stream)
        self._copy_events.append((start, done))
        self.stats.copies += 1
        self.stats.bytes += src.numel()
        return done

    def wait(self, fence: torch.cuda.Event) -> None:
        compute = torch.cuda.current_stream(self.device)
        before, after = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        before.record(compute)
        compute.wait_event(fence)
        after.record(compute)
        self._wait_events.append((before, after))

    def release_fence(self) -> torch.cuda.Event:
        event = torch.cuda.Event()
        event.record(torch.cuda.current_stream(self.device))
        return event

    def settle(self) -> None:
        torch.cuda.synchronize(self.device)
        self.stats.copy_s += sum(a.elapsed_time(b) for a, b in self._copy_events) / 1e3
        self.stats.wait_s += sum(a.elapsed_time(b) for a, b in self._wait_events) / 1e3
        self._copy_events.clear()
        self._wait_events.clear()

    def close(self) -> None:
        self.settle()


@dataclass
class _CpuFence:
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


def raw_copy(dst: torch.Tensor, src: torch.Tensor) -> None:
    """Copy one contiguous host tensor into another with a plain memmove (the GIL is released meanwhile).

    A copy thread must not call `Tensor.copy_`: ATen would start a second OpenMP team for that thread, and with
    more OpenMP threads than cores libgomp stops spinning between parallel regions, which slows every later
    kernel of the compute thread (about 15% at small scale on 2 cores, for as long as the process lives).
    """
    nbytes = src.numel() * src.element_size()
    if not (dst.is_contiguous() and src.is_contiguous()) or dst.numel() * dst.element_size() != nbytes:
        raise ValueError("raw_copy needs two contiguous tensors of the same size")
    ctypes.memmove(dst.data_ptr(), src.data_ptr(), nbytes)


class ThreadBackend(CopyBackend):
    """A copy thread running the same schedule on the CPU, so every line of the scheduler runs in tests.

    Blocking copies and copies under `inline_bytes` run in the compute thread (with ATen's parallel copy): handing
    them to the thread gains nothing. They first wait for queued copies into the same memory, so copies land in
    the order they were issued. Time spent on them counts as exposed. `delay()` (tests, fault injection) returns
    seconds to sleep after each copy, or raises to fail it; with a delay every copy goes through the thread.
    """

    def __init__(self, timeout_s: float = 60.0, delay: Callable[[], float] | None = None,
                 inline_bytes: int = 1 << 20) -> None:
        super().__init__()
        self.timeout_s = timeout_s
        self.delay = delay
        self.inline_bytes = inline_bytes
        self._queue: queue.Queue = queue.Queue()
        self._pending: list[tuple[int, int, _CpuFence]] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._work, name="weight-copy", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while (job := self._queue.get()) is not None:
            dst, src, fence = job
            start = time.perf_counter()
            try:
                raw_copy(dst, src)
                if self.delay is not None:
                    time.sleep(self.delay())
            except BaseException as exc:  # surfaced to the compute thread by wait()
                fence.error = exc
            with self._lock:
                self.stats.copy_s += time.perf_counter() - start
            fence.done.set()

    def copy(self, dst: torch.Tensor, src: torch.Tensor, after: Any, blocking: bool = False) -> _CpuFence:
        fence = _CpuFence()
        self.stats.copies += 1
        self.stats.bytes += src.numel() * src.element_size()
        begin, end = dst.data_ptr(), dst.data_ptr() + dst.numel() * dst.element_size()
        self._pending = [p for p in self._pending if not p[2].done.is_set()]
        if self.delay is None and (blocking or src.numel() * src.element_size() < self.inline_bytes):
            for _, _, earlier in [p for p in self._pending if p[0] < end and begin < p[1]]:
                self.wait(earlier)
            start = time.perf_counter()
            dst.copy_(src)
            elapsed = time.perf_counter() - start
            with self._lock:
                self.stats.copy_s += elapsed
            self.stats.wait_s += elapsed
            fence.done.set()
        else:
            self._pending.append((begin, end, fence))
            self._queue.put((dst, src, fence))
        return fence

    def wait(self, fence: _CpuFence) -> None:
        start = time.perf_counter()
        finished = fence.done.wait(self.timeout_s)
        self.stats.wait_s += time.perf_counter() - start
        if not finished:
            raise CopyTimeout(f"a weight copy took longer than {self.timeout_s} s (engine copy timeout)")
        if fence.error is not None:
            raise RuntimeError(f"weight copy failed: {fence.error}") from fence.error

    def release_fence(self) -> None:
        return None

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(self.timeout_s)


def make_backend(device: torch.device, timeout_s: float, delay: Callable[[], float] | None) -> CopyBackend:
    """The copy backend for the compute device."""
    if device.type == "cuda":
        return CudaBackend(device)
    return ThreadBackend(timeout_s, delay)
