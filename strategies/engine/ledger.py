"""The ledger: every byte of weights the engine holds on the compute device, and its peak."""
from __future__ import annotations

from dataclasses import dataclass


def human_bytes(nbytes: float) -> str:
    """1536 -> '1.5 KiB'."""
    units = ("B", "KiB", "MiB", "GiB")
    power = 0
    while abs(nbytes) >= 1024 and power < len(units) - 1:
        nbytes /= 1024
        power += 1
    return f"{nbytes:.4g} {units[power]}"


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
            raise BudgetExceeded(f"{what} needs {human_bytes(nbytes)} more, {human_bytes(self.current_bytes)} held, "
                                 f"budget {human_bytes(self.budget_bytes)}")
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
