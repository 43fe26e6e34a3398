"""Host buffers for packed weights, pinned by registering plain memory with CUDA.

torch's pinned allocator (`pin_memory=True`) rounds every request up to a power of two and page-locks it with
`cudaHostAlloc`, which faults and zeroes the pages in one thread: a 0.63 GiB unit takes 1 GiB of locked RAM, and
pinning FLUX.1-dev took over 30 s on an H200 host. Here the pages are faulted in by ATen's parallel fill, then the
exact page range is registered with `cudaHostRegister`. If registering fails, torch's allocator is the fallback.
"""
from __future__ import annotations

import warnings
from typing import Any

import torch

PAGE = 4096


class HostRegisterError(RuntimeError):
    """cudaHostRegister refused a range."""


def allocator_pinned(nbytes: int) -> torch.Tensor:
    """torch's own pinned allocation: the fallback."""
    return torch.empty(nbytes, dtype=torch.uint8, pin_memory=True)


def page_aligned(nbytes: int) -> torch.Tensor:
    """A uint8 tensor of `nbytes` rounded up to whole pages, starting on a page: a registered range then shares no
    page with any other allocation."""
    size = -(-nbytes // PAGE) * PAGE
    raw = torch.empty(size + PAGE, dtype=torch.uint8)
    offset = -raw.data_ptr() % PAGE
    return raw[offset:offset + size]


class HostBuffer:
    """`nbytes` of host memory for one packed group; pinned when asked. Call `release()` before dropping it."""

    def __init__(self, nbytes: int, pin: bool, cudart: Any = None) -> None:
        self.registered = False
        if not pin or nbytes == 0:  # CUDA refuses to register an empty range
            self.tensor = torch.empty(nbytes, dtype=torch.uint8)
            return
        self._cudart = cudart
        try:
            self.tensor = self._register(nbytes)[:nbytes]
            self.registered = True
        except HostRegisterError as exc:
            warnings.warn(f"{exc}; pinning {nbytes} bytes with torch's allocator instead")
            self.tensor = allocator_pinned(nbytes)

    def _register(self, nbytes: int) -> torch.Tensor:
        if self._cudart is None:
            self._cudart = torch.cuda.cudart()
        pages = page_aligned(nbytes)
        pages.zero_()  # faults the pages in on every core; registering then only locks them
        status = self._cudart.cudaHostRegister(pages.data_ptr(), pages.numel(), 0)
        if int(status) != 0:
            raise HostRegisterError(f"cudaHostRegister failed with error {int(status)}")
        self._pages = pages
        return pages

    def release(self) -> None:
        """Unregister the pages (copies from them must have finished); the memory is freed with the tensor."""
        if self.registered:
            self._cudart.cudaHostUnregister(self._pages.data_ptr())
            self.registered = False
