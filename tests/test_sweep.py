"""Real multiruns in a subprocess: reports at the end, resume, failures kept as rows, the submitit launcher."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
from matplotlib import image

from tests.cli_helpers import REPO, harness, rows

GRID = ["family=sd15,flux", "strategy=none,block_prefetch", "run.repeats=1", "run.progress=false"]


def test_sweep_reports_resumes_and_reruns(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    first = harness("-m", *GRID, f"hydra.sweep.dir={sweep}", f"output_root={tmp_path}")
    assert first.returncode == 0, first.stderr
    assert "[job 4/4]" in first.stderr
    for name in ("report.csv", "report.parquet", "report.md", "pareto.png"):
        assert (sweep / name).is_file(), name
    report = pd.read_csv(sweep / "report.csv")
    assert sorted(zip(report.family, report.strategy)) == [
        ("flux", "block_prefetch"), ("flux", "none"), ("sd15", "block_prefetch"), ("sd15", "none")]
    assert (report.status == "ok").all() and report.parity_exact.all()
    assert image.imread(sweep / "pareto.png").ndim == 3

    rebuilt = subprocess.run([sys.executable, "-m", "harness.report", str(sweep), "--out", str(tmp_path / "again")],
                             cwd=REPO, capture_output=True, text=True)
    assert rebuilt.returncode == 0, rebuilt.stderr
    again = pd.read_csv(tmp_path / "again" / "report.csv")
    pd.testing.assert_frame_equal(again.drop(columns="result_path"), report.drop(columns="result_path"))

    stamps = {p: p.stat().st_mtime_ns for p in sweep.rglob("result.json")}
    second = harness("-m", *GRID, f"hydra.sweep.dir={sweep}", f"output_root={tmp_path}")
    assert second.returncode == 0, second.stderr
    assert second.stderr.count("skip (done)") == 4
    assert {p: p.stat().st_mtime_ns for p in sweep.rglob("result.json")} == stamps

    forced = harness("-m", *GRID, "run.force=true", f"hydra.sweep.dir={sweep}", f"output_root={tmp_path}")
    assert forced.returncode == 0, forced.stderr
    assert "skip (done)" not in forced.stderr
    assert all(p.stat().st_mtime_ns != stamp for p, stamp in stamps.items())


def test_a_failing_job_becomes_a_row_and_the_sweep_goes_on(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    done = harness("-m", "family=sd15", "strategy=block_prefetch", "strategy.resident_units=0,1000", "run.repeats=1",
                   "run.progress=false", f"hydra.sweep.dir={sweep}", f"output_root={tmp_path}")
    assert done.returncode == 0, done.stderr
    by_units = {r["resident_units"]: r for r in rows(sweep)}
    assert by_units[0]["status"] == "ok"
    assert by_units[1000]["status"] == "error"
    assert "strategy.resident_units=1000" in by_units[1000]["error"]
    md = (sweep / "report.md").read_text()
    assert "strategy.resident_units=1000" in md


def test_jobs_that_differ_only_in_ignored_knobs_run_once(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    done = harness("-m", "strategy=none,block_stream,block_prefetch", "strategy.prefetch_depth=1,2", "run.repeats=1",
                   "run.progress=false", f"hydra.sweep.dir={sweep}", f"output_root={tmp_path}")
    assert done.returncode == 0, done.stderr
    # none and block_stream ignore prefetch_depth: their second job reuses the first one's row
    assert done.stderr.count("skip (same job as") == 2
    found = rows(sweep)
    assert len(found) == 6 and all(r["status"] == "ok" for r in found)
    reused = [r for r in found if r.get("same_as")]
    assert sorted(r["strategy"] for r in reused) == ["block_stream", "none"]
    assert all((sweep / r["same_as"] / "result.json").is_file() for r in reused)
    report = pd.read_csv(sweep / "report.csv")
    assert sorted(report.strategy) == ["block_prefetch", "block_prefetch", "block_stream", "none"]


def test_submitit_local_launcher_runs_each_job_in_its_own_process(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    done = harness("-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10", "family=sd15",
                   "strategy=none,block_stream", "run.repeats=1", "run.progress=false",
                   f"hydra.sweep.dir={sweep}", f"output_root={tmp_path}")
    assert done.returncode == 0, done.stderr
    found = rows(sweep)
    assert sorted(r["strategy"] for r in found) == ["block_stream", "none"]
    assert all(r["status"] == "ok" for r in found)
    assert len(pd.read_csv(sweep / "report.csv")) == 2
