"""Copies without pause beside a measured run: how much host-to-device traffic slows the compute itself, apart
from any wait for the copies. A CPU has no copy engine, so a copy thread takes a core from the compute; a GPU's
copy engine shares the card's memory with the kernels.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch

from strategies.engine.copy_backend import raw_copy
from strategies.engine.host_memory import HostBuffer


@dataclass
class Copied:
    """Bytes the copies moved and the seconds they ran."""

    nbytes: int = 0
    seconds: float = 0.0

    @property
    def gbps(self) -> float:
        return self.nbytes / self.seconds / 1e9 if self.seconds else 0.0


@contextmanager
def copies_beside(device: torch.device, nbytes: int = 256 << 20) -> Iterator[Copied]:
    """While the block runs, a thread copies `nbytes` from host memory (pinned on CUDA, on a side stream) to
    `device` again and again, as the engine's copies would if they never waited for the compute."""
    cuda = device.type == "cuda"
    host = HostBuffer(nbytes, pin=cuda)
    host.tensor.fill_(1)
    target = torch.empty(nbytes, dtype=torch.uint8, device=device)
    stream = torch.cuda.Stream(device) if cuda else None
    copied, stop = Copied(), threading.Event()

    def copy_until_stopped() -> None:
        while not stop.is_set():
            if stream is None:
                raw_copy(target, host.tensor)
            else:
                with torch.cuda.stream(stream):
                    target.copy_(host.tensor, non_blocking=True)
                stream.synchronize()
            copied.nbytes += nbytes

    thread = threading.Thread(target=copy_until_stopped, name="contention-copy", daemon=True)
    start = time.perf_counter()
    thread.start()
    try:
        yield copied
    finally:
        stop.set()
        thread.join()
        copied.seconds = time.perf_counter() - start
        host.release()
