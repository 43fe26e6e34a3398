"""Timing (whole run, stages, steps) and memory readings of one generation."""
from __future__ import annotations

import resource
import time
from dataclasses import dataclass
from typing import Callable

import torch

from families.base import Bundle
from strategies.engine.hooks import HookSet


class _Marker:
    """A point in time: a CUDA event on CUDA, perf_counter elsewhere."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.event = torch.cuda.Event(enable_timing=True) if self.cuda else None
        self.time = 0.0

    def mark(self) -> None:
        if self.cuda:
            self.event.record()
        else:
            self.time = time.perf_counter()

    def seconds_to(self, later: "_Marker") -> float:
        if self.cuda:
            return self.event.elapsed_time(later.event) / 1e3
        return later.time - self.time


@dataclass
class StageTimes:
    total_s: float
    encode_s: float
    denoise_s: float
    decode_s: float
    denoiser_calls: int


class StageClock:
    """Marks the first denoiser entry and the last denoiser exit, splitting a run into encode/denoise/decode."""

    def __init__(self, bundle: Bundle) -> None:
        self.device = bundle.device
        self.hooks = HookSet()
        self.points = {k: _Marker(bundle.device) for k in ("start", "denoise_start", "denoise_end", "end")}
        self.calls = 0
        for component in bundle.denoisers:
            self.hooks.around_forward(component.module, before=self._denoiser_entered,
                                      after=self.points["denoise_end"].mark)

    def _denoiser_entered(self) -> None:
        if self.calls == 0:
            self.points["denoise_start"].mark()
        self.calls += 1

    def time(self, run: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, StageTimes]:
        self.calls = 0
        self.points["start"].mark()
        output = run()
        self.points["end"].mark()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        p = self.points
        return output, StageTimes(p["start"].seconds_to(p["end"]), p["start"].seconds_to(p["denoise_start"]),
                                  p["denoise_start"].seconds_to(p["denoise_end"]),
                                  p["denoise_end"].seconds_to(p["end"]), self.calls)

    def remove(self) -> None:
        self.hooks.remove()


def host_rss_peak_bytes() -> int:
    """Peak resident set size of this process (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class CudaMemory:
    """Peak allocated/reserved bytes since reset, and NVML's used memory where available."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.nvml_peak: int | None = None
        try:
            import pynvml

            pynvml.nvmlInit()
            index = device.index if device.index is not None else torch.cuda.current_device()
            self._nvml = pynvml.nvmlDeviceGetHandleByIndex(index)
            self._read = lambda: pynvml.nvmlDeviceGetMemoryInfo(self._nvml).used
        except Exception:
            self._read = None

    def reset(self) -> None:
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        self.nvml_peak = None

    def sample(self) -> None:
        if self._read is not None:
            self.nvml_peak = max(self.nvml_peak or 0, self._read())

    def peaks(self) -> dict[str, int | None]:
        return dict(peak_vram_bytes=torch.cuda.max_memory_allocated(self.device),
                    peak_vram_reserved_bytes=torch.cuda.max_memory_reserved(self.device),
                    peak_nvml_bytes=self.nvml_peak)
