"""A one-line human summary of a result row."""
from __future__ import annotations

from typing import Any


def _fmt(value: Any, spec: str, unit: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{unit}"


def one_line(row: dict[str, Any]) -> str:
    """`sd15/base/tiny block_prefetch k=2 ok: 0.12 s (p10 0.11, p90 0.13) peak 0.15 MiB ...`."""
    name = f"{row.get('family')}/{row.get('variant')}/{row.get('scale')} {row.get('strategy')}"
    if row.get("prefetch_depth") is not None:
        name += f" k={row['prefetch_depth']}"
    if row.get("resident_units") or row.get("resident_gb") is not None:
        name += f" r={row.get('resident_units')}"
    if row.get("resident_gb") is not None:
        name += f" ({row['resident_gb']:g} GB)"
    if row.get("stream_encoders"):
        name += " +encoders"
    if row.get("status") != "ok":
        return f"{name} {row.get('status')}: {row.get('error')}"
    peak = row.get("peak_vram_bytes")
    return (f"{name} ok on {row.get('device_name')}: {_fmt(row.get('latency_s'), '.3f', ' s')} "
            f"(p10 {_fmt(row.get('latency_p10_s'), '.3f')}, p90 {_fmt(row.get('latency_p90_s'), '.3f')}), "
            f"step {_fmt(row.get('step_s'), '.4f', ' s')}, peak {_fmt(peak / 2**20 if peak else None, '.1f', ' MiB')} "
            f"({row.get('peak_vram_source')}), moved {_fmt(row.get('h2d_bytes', 0) / 2**20, '.1f', ' MiB')}, "
            f"parity {'exact' if row.get('parity_exact') else _fmt(row.get('parity_max_abs'), '.3g')}"
            + (f" (vs {row['reference_strategy']})" if row.get("reference_strategy") not in (None, "none") else ""))
