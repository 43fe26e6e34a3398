"""The command line in a subprocess: the default job, overrides, and a bad name."""
from __future__ import annotations

import json
from pathlib import Path

from tests.cli_helpers import harness


def test_default_run_writes_one_result_row(tmp_path: Path) -> None:
    done = harness(f"hydra.run.dir={tmp_path}/run", f"output_root={tmp_path}")
    assert done.returncode == 0, done.stderr
    row = json.loads((tmp_path / "run" / "result.json").read_text())
    assert (row["family"], row["scale"], row["strategy"], row["status"]) == ("sd15", "tiny", "block_prefetch", "ok")
    assert row["parity_exact"] is True
    assert row["latency_s"] > 0 and row["peak_vram_source"] == "ledger"
    assert row["apply_s"] > 0, "the row says how long applying the strategy took"
    assert "sd15/base/tiny block_prefetch k=2 ok" in done.stdout


def test_overrides_reach_the_job(tmp_path: Path) -> None:
    done = harness("family=flux", "family.variant=schnell", "strategy=block_stream", "run.steps=3", "run.seed=1",
                   "run.height=32", "run.width=32", "run.repeats=2", "run.warmup=0", "run.device=cpu",
                   f"hydra.run.dir={tmp_path}/run", f"output_root={tmp_path}")
    assert done.returncode == 0, done.stderr
    row = json.loads((tmp_path / "run" / "result.json").read_text())
    assert (row["family"], row["variant"], row["strategy"], row["steps"], row["seed"]) == ("flux", "schnell",
                                                                                         "block_stream", 3, 1)
    assert (row["height"], row["width"], row["repeats"], row["warmup"]) == (32, 32, 2, 0)
    assert row["status"] == "ok" and row["parity_exact"] is True
    assert row["prefetch_depth"] == 0


def test_a_resident_byte_budget_records_the_units_it_kept(tmp_path: Path) -> None:
    done = harness("strategy=block_stream", "strategy.resident_gb=1", "run.repeats=1", "run.progress=false",
                   f"hydra.run.dir={tmp_path}/run", f"output_root={tmp_path}")
    assert done.returncode == 0, done.stderr
    row = json.loads((tmp_path / "run" / "result.json").read_text())
    assert row["resident_gb"] == 1.0 and row["placement"] == "even" and row["parity_exact"] is True
    assert row["resident_units"] > 0 and row["streamed_units"] == 0 and 0 < row["resident_bytes"] <= 1e9
    assert f"r={row['resident_units']} (1 GB)" in done.stdout


def test_unknown_strategy_is_one_clear_line(tmp_path: Path) -> None:
    done = harness("strategy=block_prefech", f"hydra.run.dir={tmp_path}/run")
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: unknown strategy 'block_prefech' (did you mean 'block_prefetch'?); known: ")
    assert "block_stream" in lines[0] and "drop_and_reload" in lines[0]
