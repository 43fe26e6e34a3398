"""User-facing errors: one clear line each, shown without a traceback."""
from typing import Any


class HarnessError(Exception):
    """Bad input or an unsupported setting; the message is shown to the user as one line."""


class SkipJob(HarnessError):
    """The job cannot run in this environment (for example a CUDA-only peer on a CPU)."""


def whole_number(label: str, value: Any, minimum: int) -> int:
    """`value` if it is an int >= minimum, else a HarnessError naming the setting and the valid range."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise HarnessError(f"{label}={value!r} is not valid: use a whole number >= {minimum}")
    return value


GB = 10**9  # settings count decimal gigabytes (resident_gb, vram_budget_gb), as cards are sold


def gb_to_bytes(value: float | None) -> int | None:
    """Decimal gigabytes as bytes (None stays None)."""
    return None if value is None else int(value * GB)


def gigabytes(label: str, value: Any) -> float:
    """`value` as a float if it is a positive number (of GB), else a HarnessError naming the setting."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise HarnessError(f"{label}={value!r} is not valid: use a positive number of GB")
    return float(value)
