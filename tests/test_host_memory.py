"""Pinned host buffers: exact page ranges registered and unregistered, torch's allocator as the fallback."""
from __future__ import annotations

import pytest
import torch

from strategies.engine import host_memory
from strategies.engine.host_memory import PAGE, HostBuffer, page_aligned


class FakeCudart:
    """Records cudaHostRegister/Unregister calls and answers with a chosen error code."""

    def __init__(self, error: int = 0) -> None:
        self.error = error
        self.registered: dict[int, int] = {}

    def cudaHostRegister(self, ptr: int, size: int, flags: int) -> int:
        if not self.error:
            self.registered[ptr] = size
        return self.error

    def cudaHostUnregister(self, ptr: int) -> int:
        del self.registered[ptr]
        return 0


@pytest.mark.parametrize("nbytes", [1, PAGE - 1, PAGE, 3 * PAGE + 5, 10**6])
def test_page_aligned_buffers_cover_whole_pages_of_their_own(nbytes: int) -> None:
    pages = page_aligned(nbytes)
    assert pages.data_ptr() % PAGE == 0
    assert pages.numel() % PAGE == 0 and nbytes <= pages.numel() < nbytes + PAGE


def test_a_pinned_buffer_registers_its_exact_pages_and_unregisters_on_release() -> None:
    cudart = FakeCudart()
    buffer = HostBuffer(3 * PAGE + 5, pin=True, cudart=cudart)
    assert buffer.tensor.numel() == 3 * PAGE + 5
    assert cudart.registered == {buffer.tensor.data_ptr(): 4 * PAGE}
    assert not buffer.tensor.any(), "the pages were faulted in (zeroed) before registering"
    buffer.tensor.fill_(7)
    buffer.release()
    buffer.release()
    assert cudart.registered == {}


def test_a_refused_registration_falls_back_to_torchs_pinned_allocator(monkeypatch) -> None:
    fallback = []
    monkeypatch.setattr(host_memory, "allocator_pinned",
                        lambda n: fallback.append(n) or torch.empty(n, dtype=torch.uint8))
    with pytest.warns(UserWarning, match="cudaHostRegister failed with error 712"):
        buffer = HostBuffer(100, pin=True, cudart=FakeCudart(error=712))
    assert fallback == [100] and buffer.tensor.numel() == 100
    buffer.release()


@pytest.mark.parametrize("nbytes,pin", [(100, False), (0, True)])
def test_an_unpinned_or_empty_buffer_never_touches_cuda(nbytes: int, pin: bool) -> None:
    buffer = HostBuffer(nbytes, pin=pin, cudart=object())
    assert buffer.tensor.numel() == nbytes and not buffer.registered
    buffer.release()
