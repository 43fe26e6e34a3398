"""Join the result rows of one or more sweeps into report.csv, report.parquet, report.md and pareto.png.

Run as ``python -m harness.report DIR [DIR ...] [--out OUT]``.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from harness.atomic import write_atomic
from harness.errors import HarnessError
from harness.layout import REPORT_FILES, RESULT_FILE
from harness.pareto import pareto_front
from harness.plot import byte_unit, plot_pareto

REQUIRED = ("family", "strategy", "status")
COLUMNS = [
    "family", "variant", "scale", "strategy", "prefetch_depth", "resident_units", "resident_gb", "placement",
    "stream_encoders", "device", "device_name", "dtype", "height", "width", "frames", "steps", "seed", "warmup",
    "repeats", "status", "error", "build_s", "apply_s", "latency_s", "latency_p10_s", "latency_p90_s", "encode_s",
    "denoise_s", "decode_s", "step_s", "peak_vram_bytes", "peak_vram_source", "peak_vram_reserved_bytes",
    "peak_nvml_bytes", "warmup_peak_vram_bytes", "peak_weights_bytes", "resident_bytes", "host_rss_peak_bytes",
    "pinned_bytes", "h2d_bytes", "h2d_gbps", "copy_s", "exposed_copy_s", "overlap_efficiency", "vram_budget_gb",
    "build_on", "parity_exact", "parity_max_abs", "parity_psnr_db", "reference_strategy", "torch_version",
    "diffusers_version", "git_sha", "timestamp",
]
INT_COLUMNS = ["prefetch_depth", "resident_units", "height", "width", "frames", "steps", "seed", "warmup",
               "repeats"]
FLOAT_COLUMNS = [
    "build_s", "apply_s", "latency_s", "latency_p10_s", "latency_p90_s", "encode_s", "denoise_s", "decode_s", "step_s",
    "peak_vram_bytes", "peak_vram_reserved_bytes", "peak_nvml_bytes", "warmup_peak_vram_bytes", "peak_weights_bytes",
    "resident_bytes", "resident_gb", "host_rss_peak_bytes", "pinned_bytes", "h2d_bytes", "h2d_gbps", "copy_s",
    "exposed_copy_s", "overlap_efficiency", "vram_budget_gb", "parity_max_abs", "parity_psnr_db",
]
BOOL_COLUMNS = ["parity_exact", "stream_encoders"]
# Runs that share these are compared with each other (slowdown, VRAM fraction, Pareto front).
SETTINGS = ["family", "variant", "scale", "device", "device_name", "dtype", "height", "width", "frames",
            "steps"]
# Rows that share these are the same job run again: the newest one is kept.
JOB_KEYS = [*SETTINGS, "strategy", "prefetch_depth", "resident_units", "resident_gb", "placement",
            "stream_encoders", "vram_budget_gb", "build_on", "seed", "warmup", "repeats"]
NA = "–"


def load_results(paths: Iterable[str | Path]) -> tuple[pd.DataFrame, list[tuple[Path, str]]]:
    """Read every result.json below `paths`; return the rows and the (file, reason) pairs skipped."""
    rows: list[dict] = []
    skipped: list[tuple[Path, str]] = []
    for path in _result_files(paths, skipped):
        try:
            rows.append({**_read_row(path), "result_path": str(path)})
        except ValueError as err:
            skipped.append((path, str(err)))
    return _typed(pd.DataFrame(rows)), skipped


def add_derived(df: pd.DataFrame) -> pd.DataFrame:
    """Keep the newest row per job and add slowdown, vram_fraction, pareto, label and setting.

    The reference is the ok resident run (strategy "none") with the same SETTINGS and, where one
    exists, the same VRAM budget; rows without one get NaN.
    """
    df = _newest_per_job(_typed(df))
    ok = df["status"].eq("ok")
    resident = ok & df["strategy"].eq("none")
    df["slowdown"] = (df["latency_s"] / _reference(df, "latency_s", resident)).where(ok)
    df["vram_fraction"] = (df["peak_vram_bytes"] / _reference(df, "peak_vram_bytes", resident)).where(ok)
    df["pareto"] = pareto_front(df, "peak_vram_bytes", "slowdown", by=SETTINGS)
    df["label"] = [strategy_label(row) for row in df.itertuples()]
    df["setting"] = [_setting(row) for row in df.itertuples()]
    return df


def write_reports(
    df: pd.DataFrame, out_dir: str | Path, skipped_files: Sequence[tuple[Path, str]]
) -> list[Path]:
    """Write report.csv, report.parquet, report.md and pareto.png of an add_derived frame, atomically."""
    csv, parquet, md, png = (Path(out_dir) / name for name in REPORT_FILES)
    write_atomic(csv, lambda tmp: df.to_csv(tmp, index=False))
    write_atomic(parquet, lambda tmp: df.to_parquet(tmp, index=False))
    write_atomic(md, lambda tmp: tmp.write_text(_markdown(df, skipped_files), encoding="utf-8"))
    write_atomic(png, lambda tmp: plot_pareto(df, tmp))
    return [csv, parquet, md, png]


def aggregate(dirs: Sequence[str | Path], out_dir: str | Path | None = None) -> pd.DataFrame:
    """Load, derive and write the reports of `dirs` into `out_dir` (default: the first dir)."""
    return _build(dirs, out_dir)[0]


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: rebuild the report files from result folders; 2 when there is nothing to report."""
    parser = argparse.ArgumentParser(prog="python -m harness.report", description=main.__doc__)
    parser.add_argument("dirs", nargs="+", type=Path, metavar="DIR", help="sweep or job folder")
    parser.add_argument("--out", type=Path, help="output folder (default: the first DIR)")
    args = parser.parse_args(argv)
    try:
        df, skipped, out = _build(args.dirs, args.out)
    except HarnessError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {', '.join(REPORT_FILES)} to {out}")
    print(_summary(df, skipped))
    return 0


def _build(
    dirs: Sequence[str | Path], out_dir: str | Path | None
) -> tuple[pd.DataFrame, list[tuple[Path, str]], Path]:
    """Shared body of aggregate and main."""
    raw, skipped = load_results(dirs)
    if raw.empty:
        unreadable = f" ({len(skipped)} skipped: {skipped[0][1]})" if skipped else ""
        raise HarnessError(f"no result.json found under {', '.join(map(str, dirs))}{unreadable}")
    out = Path(out_dir if out_dir is not None else dirs[0])
    df = add_derived(raw)
    write_reports(df, out, skipped)
    return df, skipped, out


def _result_files(paths: Iterable[str | Path], skipped: list[tuple[Path, str]]) -> list[Path]:
    """The result files under `paths`, each once; missing paths go to `skipped`."""
    found: dict[Path, Path] = {}
    for path in map(Path, paths):
        if path.is_file():
            candidates = [path]
        elif path.is_dir():
            candidates = sorted(p for p in path.rglob(RESULT_FILE) if p.is_file())
        else:
            skipped.append((path, "no such file or directory"))
            continue
        for file in candidates:
            found.setdefault(file.resolve(), file)
    return list(found.values())


def _read_row(path: Path) -> dict:
    """One result row; ValueError with a one-line reason when the file does not hold one."""
    try:
        row = json.loads(path.read_bytes())
    except OSError as err:
        raise ValueError(f"unreadable: {err.strerror or err}") from err
    except ValueError as err:  # bad JSON, truncated file or bad encoding
        raise ValueError(f"invalid JSON: {err}") from err
    if not isinstance(row, dict):
        raise ValueError(f"not a result row: a JSON {type(row).__name__}")
    missing = [key for key in REQUIRED if key not in row]
    if missing:
        raise ValueError(f"not a result row: missing {', '.join(missing)}")
    return row


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    """All COLUMNS present with one type each, so sweeps of any age merge and write to parquet."""
    df = df.reindex(columns=[*COLUMNS, *(c for c in df.columns if c not in COLUMNS)])
    for column in FLOAT_COLUMNS:
        df[column] = pd.to_numeric(df[column], errors="coerce").astype(float)
    for column in INT_COLUMNS:
        number = pd.to_numeric(df[column], errors="coerce").astype(float)
        df[column] = number.where(number == number.round()).astype("Int64")
    for column in BOOL_COLUMNS:
        df[column] = df[column].where(df[column].isin([True, False])).astype("boolean")
    numeric = {*FLOAT_COLUMNS, *INT_COLUMNS, *BOOL_COLUMNS}
    for column in df.columns:
        if column in COLUMNS and column not in numeric or df[column].dtype == object:
            df[column] = df[column].astype("str")
    return df


def _newest_per_job(df: pd.DataFrame) -> pd.DataFrame:
    """Drop repeated jobs, keeping the row with the latest timestamp (the later file on a tie); sort."""
    seconds = pd.to_numeric(df["timestamp"], errors="coerce")
    text = df["timestamp"].where(seconds.isna())
    when = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
    when = when.fillna(pd.to_datetime(seconds, unit="s", utc=True))
    order = when.sort_values(kind="stable", na_position="first").index
    newest = df.loc[order].drop_duplicates(JOB_KEYS, keep="last")
    return newest.sort_values(JOB_KEYS, kind="stable").reset_index(drop=True)


def _reference(df: pd.DataFrame, column: str, resident: pd.Series) -> pd.Series:
    """Per row, the median `column` of its resident runs: same budget if any ran, else any budget."""
    values = df[column].where(resident)
    same_budget = values.groupby([df[k] for k in [*SETTINGS, "vram_budget_gb"]], dropna=False)
    any_budget = values.groupby([df[k] for k in SETTINGS], dropna=False)
    return same_budget.transform("median").fillna(any_budget.transform("median"))


def strategy_label(row) -> str:
    """Strategy and its knobs, e.g. "block_prefetch k=2 r=4 largest @12 GB"."""
    parts = [str(row.strategy)]
    if pd.notna(row.prefetch_depth) and row.prefetch_depth > 0:
        parts.append(f"k={row.prefetch_depth}")
    gb = getattr(row, "resident_gb", None)
    budget = f" ({gb:g} GB)" if pd.notna(gb) else ""
    if budget or (pd.notna(row.resident_units) and row.resident_units > 0):
        parts += [f"r={row.resident_units}{budget}", *([row.placement] if pd.notna(row.placement) else [])]
    if pd.notna(row.stream_encoders) and row.stream_encoders:
        parts.append("+encoders")
    if pd.notna(row.vram_budget_gb):
        parts.append(f"@{row.vram_budget_gb:g} GB")
    if getattr(row, "build_on", None) == "host":
        parts.append("(host build)")
    return " ".join(parts)


def _setting(row) -> str:
    """The settings runs are compared under, e.g. "base · full · 512×512 · 30 steps · float16 · cpu"."""
    size = f"{row.width}×{row.height}" if pd.notna(row.width) and pd.notna(row.height) else None
    frames = f"{row.frames} frames" if pd.notna(row.frames) and row.frames > 1 else None
    steps = f"{row.steps} steps" if pd.notna(row.steps) else None
    device = row.device_name if pd.notna(row.device_name) else row.device
    parts = [row.variant, row.scale, size, frames, steps, row.dtype, device]
    return " · ".join(str(p) for p in parts if pd.notna(p))


def _summary(df: pd.DataFrame, skipped: Sequence[tuple[Path, str]]) -> str:
    """One line: runs by status, families, unreadable files."""
    by_status = ", ".join(f"{n} {status}" for status, n in df["status"].value_counts().items())
    line = f"{_plural(len(df), 'run')} ({by_status}) across {_plural(df['family'].nunique(), 'family')}"
    return line + (f"; {_plural(len(skipped), 'unreadable result file')}" if skipped else "")


def _plural(count: int, noun: str) -> str:
    """Count and noun: 1 run, 2 runs, 2 families."""
    if count == 1:
        return f"1 {noun}"
    return f"{count} {noun[:-1]}ies" if noun.endswith("y") else f"{count} {noun}s"


def _markdown(df: pd.DataFrame, skipped: Sequence[tuple[Path, str]]) -> str:
    """The human report: context, one table per family and setting, then the unreadable files."""
    lines = ["# Offload strategy report", ""]
    lines += [f"- Device: {_distinct(df, 'device_name', 'device')}", f"- {_summary(df, skipped)}"]
    for name in ("torch_version", "diffusers_version", "git_sha"):
        if df[name].notna().any():
            lines.append(f"- {name.replace('_', ' ')}: {_distinct(df, name)}")
    if df["peak_vram_source"].eq("ledger").any():
        lines.append("- Peak VRAM from the engine's ledger counts weights only (CPU runs).")
    lines += [
        "- Slowdown and VRAM fraction are relative to the resident run (`none`) with the same settings;"
        " ★ marks the Pareto-optimal runs: no other run matches one on both peak VRAM and slowdown"
        " and beats it on either.",
        "", "![Peak VRAM against slowdown](pareto.png)", "",
    ]
    for family, runs in df.groupby("family", sort=False):
        lines += [f"## {family}", ""]
        for setting, group in runs.groupby("setting", sort=False):
            lines += [f"*{setting}*", "", *_table(group), ""]
    if skipped:
        lines += ["## Unreadable result files", ""]
        lines += [f"- `{path}`: {_cell(reason)}" for path, reason in skipped]
        lines.append("")
    return "\n".join(lines)


def _table(group: pd.DataFrame) -> list[str]:
    """Markdown table of one setting's runs: ok ones fastest first, then the failed ones."""
    vram, vram_scale = byte_unit(group["peak_vram_bytes"].max())
    moved, moved_scale = byte_unit(group["h2d_bytes"].max())
    header = ["", "strategy", f"peak VRAM ({vram})", "latency (s)", "p10–p90 (s)", "slowdown",
              "VRAM fraction", f"moved ({moved})", "GB/s", "parity", "status"]
    rank = group.assign(_failed=~group["status"].eq("ok"))
    rank = rank.sort_values(["_failed", "slowdown", "peak_vram_bytes", "status", "label"], kind="stable")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rank.itertuples():
        spread = [row.latency_p10_s, row.latency_p90_s]
        cells = [
            "★" if row.pareto else "",
            _cell(row.label),
            _num(row.peak_vram_bytes / vram_scale, ".2f"),
            _seconds(row.latency_s),
            NA if all(pd.isna(spread)) else "–".join(map(_seconds, spread)),
            _num(row.slowdown, ".2f", "×"),
            _num(row.vram_fraction, ".0%"),
            _num(row.h2d_bytes / moved_scale, ".2f"),
            _num(row.h2d_gbps, ".1f"),
            _parity(row),
            _cell(row.status if pd.isna(row.error) else f"{row.status}: {row.error}"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _num(value: float, spec: str, suffix: str = "") -> str:
    """`value` formatted, or a dash when missing."""
    return NA if pd.isna(value) else format(value, spec) + suffix


def _seconds(value: float) -> str:
    """Three significant digits, trailing zeros kept: 0.0123, 1.90, 10.0, 123."""
    return _num(value, ".0f" if value >= 100 else "#.3g")


def _parity(row) -> str:
    """Parity cell: exact, the largest absolute difference, or a dash; names the reference if not `none`."""
    if pd.isna(row.parity_exact):
        return NA
    reference = getattr(row, "reference_strategy", None)
    against = f" (vs {reference})" if isinstance(reference, str) and reference != "none" else ""
    return ("exact" if row.parity_exact else f"max abs {_num(row.parity_max_abs, '.2g')}") + against


def _cell(text: str, limit: int = 120) -> str:
    """One line of text that cannot break a Markdown table."""
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _distinct(df: pd.DataFrame, column: str, fallback: str | None = None) -> str:
    """The distinct values of `column` (or of `fallback` where it is missing), comma separated."""
    values = df[column].fillna(df[fallback]) if fallback else df[column]
    return ", ".join(sorted(values.dropna().astype(str).unique())) or NA


if __name__ == "__main__":
    sys.exit(main())
