"""Report: hand-made result.json files in, report files out."""
import math
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pandas as pd
import pytest

from harness.atomic import write_json
from harness.layout import REPORT_FILES
from harness.plot import plot_pareto
from harness.report import add_derived, aggregate, load_results

GIB = 2**30
BASE = dict(
    family="sd15", variant="base", scale="tiny", strategy="none", prefetch_depth=0, resident_units=None,
    placement=None, device="cpu", device_name="cpu", dtype="float32", height=64, width=64, frames=1, steps=2,
    seed=0, warmup=1, repeats=3, status="ok", error=None, peak_vram_source="ledger", vram_budget_gb=None,
    timestamp="2026-01-01T12:00:00",
)


def result(folder: Path, **fields) -> None:
    """Write one result.json; ok rows get measurements from `latency` and `peak_gib`."""
    latency, peak = fields.pop("latency", None), fields.pop("peak_gib", None)
    row = {**BASE, **fields}
    if row["status"] == "ok":
        row.update(latency_s=latency, latency_p10_s=latency * 0.9, latency_p90_s=latency * 1.1,
                   peak_vram_bytes=int(peak * GIB), h2d_bytes=GIB, h2d_gbps=5.0, parity_exact=True,
                   parity_max_abs=0.0)
    write_json(folder / "result.json", row)


def sd15_sweep(root: Path) -> None:
    """Resident, three streaming runs (one dominated), a skipped peer, an oom under a budget, a bad file."""
    result(root / "0", latency=2.0, peak_gib=4.0)
    result(root / "1", strategy="block_stream", latency=3.0, peak_gib=1.0)
    result(root / "2", strategy="block_prefetch", prefetch_depth=2, latency=2.5, peak_gib=1.5)
    result(root / "3", strategy="drop_and_reload", latency=3.5, peak_gib=2.0)
    result(root / "4" / "nested", strategy="block_prefetch", prefetch_depth=2, resident_units=4,
           placement="largest", latency=2.2, peak_gib=2.5)
    result(root / "5", strategy="sequential_cpu_offload", status="skipped", error="needs CUDA")
    result(root / "6", strategy="block_prefetch", prefetch_depth=1, status="oom", vram_budget_gb=0.5,
           error="CUDA out of memory. Tried to allocate 20.00 MiB")
    (root / "7").mkdir()
    (root / "7" / "result.json").write_text('{"family": "sd15", "strategy": "blo')


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """One sweep with two families, aggregated once; returns (sweep dir, frame)."""
    root = tmp_path_factory.mktemp("sweep")
    sd15_sweep(root)
    result(root / "8", family="flux", latency=10.0, peak_gib=30.0)
    result(root / "9", family="flux", strategy="block_prefetch", prefetch_depth=1, latency=12.0, peak_gib=9.0)
    return root, aggregate([root])


def by_label(df: pd.DataFrame, family: str = "sd15") -> pd.DataFrame:
    return df[df["family"] == family].set_index("label")


def test_all_report_files_are_written(report):
    root, df = report
    assert all((root / name).stat().st_size > 0 for name in REPORT_FILES)
    assert len(pd.read_csv(root / "report.csv")) == len(df) == 9
    assert len(pd.read_parquet(root / "report.parquet")) == 9


def test_slowdown_vram_fraction_and_pareto(report):
    runs = by_label(report[1])
    assert runs.loc["none", "slowdown"] == 1.0
    assert runs.loc["block_stream", "slowdown"] == pytest.approx(1.5)
    assert runs.loc["block_prefetch k=2", "slowdown"] == pytest.approx(1.25)
    assert runs.loc["block_prefetch k=2", "vram_fraction"] == pytest.approx(1.5 / 4)
    assert by_label(report[1], "flux").loc["block_prefetch k=1", "slowdown"] == pytest.approx(1.2)
    front = set(runs.index[runs["pareto"]])
    assert front == {"none", "block_stream", "block_prefetch k=2", "block_prefetch k=2 r=4 largest"}
    assert math.isnan(runs.loc["sequential_cpu_offload", "slowdown"])


def test_markdown_shows_failed_runs_with_reason_and_skipped_files(report):
    md = (report[0] / "report.md").read_text()
    assert "## sd15" in md and "## flux" in md and "cpu" in md
    assert "skipped: needs CUDA" in md
    assert "oom: CUDA out of memory. Tried to allocate 20.00 MiB" in md
    assert "| ★ | block_prefetch k=2 r=4 largest |" in md
    assert "|  | drop_and_reload |" in md
    assert "Unreadable result files" in md and "7/result.json" in md and "invalid JSON" in md


def test_png_is_an_image_with_one_panel_per_family(report, tmp_path):
    root, df = report
    assert matplotlib.image.imread(root / "pareto.png").ndim == 3
    fig = plot_pareto(df, tmp_path / "p.png")
    assert sorted(ax.get_title(loc="left") for ax in fig.axes) == ["flux", "sd15"]


def test_unreadable_files_are_listed_not_fatal(tmp_path):
    result(tmp_path / "good", latency=1.0, peak_gib=1.0)
    bad = {"empty": "", "list": "[1, 2]", "keys": '{"family": "sd15"}', "bytes": b"\xff\xfe{"}
    for name, text in bad.items():
        (tmp_path / name).mkdir()
        path = tmp_path / name / "result.json"
        path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)
    df, skipped = load_results([tmp_path, tmp_path / "missing"])
    assert len(df) == 1
    reasons = {path.relative_to(tmp_path).parts[0]: reason for path, reason in skipped}
    assert set(reasons) == {*bad, "missing"}
    assert "missing strategy, status" in reasons["keys"] and "JSON list" in reasons["list"]
    assert "invalid JSON" in reasons["empty"] and "invalid JSON" in reasons["bytes"]


def test_newest_duplicate_wins_and_missing_reference_gives_nan(tmp_path):
    result(tmp_path / "a", strategy="block_stream", latency=9.0, peak_gib=1.0, timestamp="2026-01-01T10:00:00")
    result(tmp_path / "b", strategy="block_stream", latency=3.0, peak_gib=1.0, timestamp="2026-01-02T10:00:00")
    result(tmp_path / "c", strategy="block_stream", latency=5.0, peak_gib=1.0, timestamp="2025-12-31T10:00:00")
    df = add_derived(load_results([tmp_path])[0])
    assert df["latency_s"].tolist() == [3.0]
    assert df["slowdown"].isna().all() and not df["pareto"].any()


def test_reference_prefers_the_same_budget(tmp_path):
    result(tmp_path / "a", latency=2.0, peak_gib=4.0)
    result(tmp_path / "b", latency=2.2, peak_gib=4.0, vram_budget_gb=8.0)
    result(tmp_path / "c", strategy="block_stream", latency=4.4, peak_gib=1.0, vram_budget_gb=8.0)
    result(tmp_path / "d", strategy="block_stream", latency=3.0, peak_gib=1.0, vram_budget_gb=2.0)
    runs = by_label(add_derived(load_results([tmp_path])[0]))
    assert runs.loc["block_stream @8 GB", "slowdown"] == pytest.approx(2.0)
    assert runs.loc["block_stream @2 GB", "slowdown"] == pytest.approx(3.0 / 2.1)  # median of both residents


def test_two_sweeps_merge(tmp_path):
    result(tmp_path / "one" / "0", latency=2.0, peak_gib=4.0)
    result(tmp_path / "two" / "0", strategy="block_stream", latency=3.0, peak_gib=1.0)
    df = aggregate([tmp_path / "one", tmp_path / "two"], tmp_path / "out")
    assert by_label(df).loc["block_stream", "slowdown"] == pytest.approx(1.5)
    assert len(pd.read_csv(tmp_path / "out" / "report.csv")) == 2
    assert not (tmp_path / "one" / "report.csv").exists()


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.report", *args], capture_output=True, text=True,
                          cwd=Path(__file__).parents[1], timeout=60)


def test_cli_rebuilds_reports(tmp_path):
    sd15_sweep(tmp_path / "sweep")
    done = run_cli(str(tmp_path / "sweep"), "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert str(tmp_path / "out") in done.stdout
    assert "7 runs" in done.stdout and "1 unreadable result file" in done.stdout
    assert all((tmp_path / "out" / name).exists() for name in REPORT_FILES)


def test_cli_exits_2_when_there_is_nothing(tmp_path):
    done = run_cli(str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "no result.json" in done.stderr


def test_the_commit_can_be_named_where_git_cannot_tell(monkeypatch) -> None:
    from harness.environment import git_sha

    git_sha.cache_clear()
    monkeypatch.setenv("HARNESS_GIT_SHA", "2ee1c8a")
    try:
        assert git_sha() == "2ee1c8a"
    finally:
        git_sha.cache_clear()
    monkeypatch.delenv("HARNESS_GIT_SHA")
    assert git_sha() != "2ee1c8a"


def test_a_host_build_and_its_reference_are_named(tmp_path):
    result(tmp_path / "0", latency=2.0, peak_gib=4.0, reference_strategy="none")
    result(tmp_path / "1", strategy="block_stream", latency=3.0, peak_gib=1.0, build_on="host", vram_budget_gb=2.0,
           reference_strategy="block_stream+encoders")
    aggregate([tmp_path])
    md = (tmp_path / "report.md").read_text()
    assert "| block_stream @2 GB (host build) |" in md
    assert "| exact (vs block_stream+encoders) |" in md and "| exact |" in md
