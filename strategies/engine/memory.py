"""Byte buffers on the compute device, reused the way CUDA's caching allocator reuses them."""
from __future__ import annotations

import torch


class BufferPool:
    """Hands out uint8 buffers and takes them back when the engine frees weights.

    On CUDA, torch's caching allocator already keeps freed memory and lends it to the next allocations (a VAE's
    activations, say), so a freed buffer is simply dropped. On the CPU, freed memory goes back to the operating
    system and every new buffer is paid again in page faults, so freed buffers are kept, by size, for reuse.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._spare: dict[int, list[torch.Tensor]] = {}

    def take(self, nbytes: int) -> torch.Tensor:
        spare = self._spare.get(nbytes)
        return spare.pop() if spare else torch.empty(nbytes, dtype=torch.uint8, device=self.device)

    def give(self, buffer: torch.Tensor) -> None:
        if self.device.type != "cuda":
            self._spare.setdefault(buffer.numel(), []).append(buffer)

    @property
    def held_bytes(self) -> int:
        """Bytes of freed buffers kept for reuse."""
        return sum(b.numel() for spare in self._spare.values() for b in spare)

    def clear(self) -> None:
        self._spare.clear()
