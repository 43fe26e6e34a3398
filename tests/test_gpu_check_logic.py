"""The GPU check's logic, run on the CPU at tiny scale (the same script a GPU session runs at full scale)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.cli_helpers import REPO


def test_gpu_check_runs_on_cpu_at_tiny_scale(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "benchmarks.gpu_bench", "--out", str(tmp_path), "--device", "cpu",
                           "--scale", "tiny", "--tiny", "none,block_prefetch", "--budget-s", "120"],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    for name in ("summary.md", "report.md", "report.csv", "pareto.png", "rows.jsonl", "bandwidth.json"):
        assert (tmp_path / name).is_file(), name
    rows = [json.loads(line) for line in (tmp_path / "rows.jsonl").read_text().splitlines()]
    sections = {r["section"] for r in rows}
    assert sections == {"tiny", "flux", "ltx_video", "flux-host", "contention"}
    contention = {r["family"]: r for r in rows if r["section"] == "contention"}
    assert contention.keys() == {"flux", "ltx_video"}
    assert all(r["copy_gbps"] > 0 and 0 < r["denoise_alone_s"] < r["total_alone_s"] for r in contention.values())
    host = next(r for r in rows if r["section"] == "flux-host")
    assert (host["build_on"], host["status"], host["parity_exact"]) == ("host", "ok", True), host["error"]
    ours = [r for r in rows if not r["strategy"].startswith("diffusers_") and r["section"] != "contention"]
    assert all(r["status"] == "ok" and r["parity_exact"] for r in ours), [r["error"] for r in ours]
    assert all(r["status"] == "skipped" for r in rows if r["strategy"].startswith("diffusers_"))
    assert all(r["weights_intact"] for r in rows if r["section"] == "tiny")
    # every knob reaches the row: streaming the encoders is told apart from streaming the denoiser alone
    flux_prefetch = [r for r in rows if r["section"] == "flux" and r["strategy"] == "block_prefetch"]
    assert {r["stream_encoders"] for r in flux_prefetch} == {False, True}
    assert "block_prefetch k=2 +encoders" in (tmp_path / "report.md").read_text()
    summary = (tmp_path / "summary.md").read_text()
    assert "### flux" in summary and "### ltx_video" in summary and "parity:" in summary
    assert "## The resident run beside copies without pause" in summary and "| ltx_video | " in summary
    assert "contention" not in (tmp_path / "report.csv").read_text(), "the full-scale report holds strategy runs only"


def test_gpu_check_runs_only_the_configurations_named(tmp_path: Path) -> None:
    only = "flux:block_prefetch/prefetch_depth=2/stream_encoders=True/vram_budget_gb=6.0,flux:none/vram_budget_gb=24.0"
    done = subprocess.run([sys.executable, "-m", "benchmarks.gpu_bench", "--out", str(tmp_path), "--device", "cpu",
                           "--scale", "tiny", "--tiny", "none", "--no-video", "--only", only, "--repeats", "3"],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in (tmp_path / "rows.jsonl").read_text().splitlines()]
    assert [(r["strategy"], r["vram_budget_gb"], r["status"], r["repeats"]) for r in rows] == [
        ("block_prefetch", 6.0, "ok", 3), ("none", 24.0, "ok", 3)]


def test_changed_weights_are_named() -> None:
    from benchmarks.gpu_bench import changed_weights

    before = {"te.a": ("cuda:0", 1.0), "te.b": ("cuda:0", 2.0)}
    after = {"te.a": ("cpu", 1.0), "te.b": ("cuda:0", 2.0), "te.c": ("cuda:0", 3.0)}
    assert changed_weights(before, before) == []
    assert changed_weights(before, after) == ["te.a: ('cuda:0', 1.0) -> ('cpu', 1.0)",
                                              "te.c: None -> ('cuda:0', 3.0)"]
    assert changed_weights(before, after, shown=1) == ["te.a: ('cuda:0', 1.0) -> ('cpu', 1.0)", "... 1 more"]
