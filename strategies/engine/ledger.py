"""The ledger: every byte of weights the engine holds on the compute device, and its peak."""
from __future__ import annotations

from dataclasses import dataclass


class BudgetExceeded(RuntimeError):
    """Holding more weight bytes than the emulated VRAM budget allows."""


@dataclass
class Ledger:
    """Counts weight bytes and streamed units on the compute device (the CPU's VRAM figure)."""

    budget_bytes: int | None = None
    current_bytes: int = 0
    peak_bytes: int = 0
    units_resident: int = 0
    peak_units_resident: int = 0

    def allocate(self, nbytes: int, what: str) -> None:
        if self.budget_bytes is not None and self.current_bytes + nbytes > self.budget_bytes:
            raise BudgetExceeded(
                f"{what} needs {nbytes / 2**30:.3f} GiB more, {self.current_bytes / 2**30:.3f} GiB held, "
                f"budget {self.budget_bytes / 2**30:.3f} GiB")
        self.current_bytes += nbytes
        self.peak_bytes = max(self.peak_bytes, self.current_bytes)

    def free(self, nbytes: int) -> None:
        self.current_bytes -= nbytes

    def unit_loaded(self) -> None:
        self.units_resident += 1
        self.peak_units_resident = max(self.peak_units_resident, self.units_resident)

    def unit_evicted(self) -> None:
        self.units_resident -= 1

    def reset_peak(self) -> None:
        self.peak_bytes = self.current_bytes
        self.peak_units_resident = self.units_resident
