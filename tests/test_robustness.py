"""At the edge: faults in the copy path, emulated out-of-memory, repeated apply/remove, interrupted sweeps."""
from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest
import torch

from families.base import BuildSpec
from harness.run import budget_bytes, memory_cap
from harness.settings import JobSettings
from strategies.base import STRATEGIES, ApplyContext
from strategies.engine.ledger import BudgetExceeded
from tests.cli_helpers import REPO, harness, rows
from tests.conftest import CPU, assert_same_weights, tiny, weights_of


def failing_on(copy_number: int):
    counter = itertools.count(1)

    def delay() -> float:
        if next(counter) == copy_number:
            raise OSError("injected copy failure")
        return 0.0

    return delay


@pytest.mark.parametrize("strategy,params", [("block_prefetch", {"prefetch_depth": 2}), ("block_stream", {}),
                                             ("drop_and_reload", {})])
@pytest.mark.parametrize("copy_number", [1, 3])
def test_copy_failure_surfaces_and_leaves_the_model_intact(strategy: str, params: dict, copy_number: int) -> None:
    bundle, args, reference = tiny("sd15")
    before = weights_of(bundle)
    handle = STRATEGIES.get(strategy)(**params).apply(bundle, ApplyContext(CPU, copy_delay=failing_on(copy_number)))
    with pytest.raises(RuntimeError, match="weight copy failed: injected copy failure"):
        try:
            bundle.generate(args)
        finally:
            handle.remove()
    assert_same_weights(before, bundle)
    assert torch.equal(bundle.generate(args), reference)


def test_stuck_copy_hits_its_timeout_instead_of_hanging() -> None:
    bundle, args, reference = tiny("flux")
    before = weights_of(bundle)
    handle = STRATEGIES.get("block_prefetch")(prefetch_depth=1).apply(
        bundle, ApplyContext(CPU, copy_delay=lambda: 3.0, copy_timeout_s=0.2))
    start = time.monotonic()
    with pytest.raises(Exception, match="took longer than 0.2 s"):
        try:
            bundle.generate(args)
        finally:
            handle.remove()
    assert time.monotonic() - start < 2.5
    assert_same_weights(before, bundle)
    assert torch.equal(bundle.generate(args), reference)


def test_budget_refuses_weights_beyond_it_and_frees_everything() -> None:
    bundle, args, reference = tiny("flux")
    before = weights_of(bundle)
    with pytest.raises(BudgetExceeded, match="budget"):
        STRATEGIES.get("block_prefetch")(prefetch_depth=4).apply(bundle, ApplyContext(CPU, vram_budget_bytes=1000))
    assert_same_weights(before, bundle)
    assert torch.equal(bundle.generate(args), reference)


def test_twenty_apply_remove_cycles_grow_neither_rss_nor_ledger() -> None:
    bundle, args, _ = tiny("flux")
    process = psutil.Process()

    def cycle() -> None:
        handle = STRATEGIES.get("block_prefetch")(prefetch_depth=2).apply(bundle, ApplyContext(CPU))
        bundle.generate(args)
        handle.remove()
        assert handle.ledger.current_bytes == 0 and handle.ledger.units_resident == 0

    for _ in range(3):
        cycle()
    rss = process.memory_info().rss
    for _ in range(20):
        cycle()
    assert process.memory_info().rss - rss < 16 * 2**20


def test_oom_job_is_a_row_and_the_next_job_runs(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    done = harness("-m", "strategy=block_stream", "run.vram_budget_gb=0.00001,1", "run.repeats=1",
                   "run.progress=false", f"hydra.sweep.dir={sweep}", f"output_root={tmp_path}")
    assert done.returncode == 0, done.stderr
    by_budget = {r["vram_budget_gb"]: r for r in rows(sweep)}
    assert by_budget[0.00001]["status"] == "oom"
    assert "run.vram_budget_gb=1e-05 is too small" in by_budget[0.00001]["error"]
    assert by_budget[1]["status"] == "ok" and by_budget[1]["parity_exact"]
    assert "oom" in (sweep / "report.md").read_text()


def test_corrupt_result_file_is_named_in_the_report(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    done = harness("-m", "strategy=none,block_stream", "run.repeats=1", "run.progress=false",
                   f"hydra.sweep.dir={sweep}", f"output_root={tmp_path}")
    assert done.returncode == 0, done.stderr
    broken = sweep / "half-written" / "result.json"
    broken.parent.mkdir()
    broken.write_text('{"family": "sd15", "strat')
    rebuilt = subprocess.run([sys.executable, "-m", "harness.report", str(sweep)], cwd=REPO, capture_output=True,
                             text=True)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "half-written" in (sweep / "report.md").read_text()


def test_ctrl_c_stops_the_sweep_reports_what_finished_and_resumes(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    args = [sys.executable, "-m", "harness", "-m", "family=sd15", "strategy=none,block_stream,block_prefetch",
            "run.seed=0,1,2", "run.repeats=1", "run.progress=false", f"hydra.sweep.dir={sweep}",
            f"output_root={tmp_path}"]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 300
    while len(list(sweep.rglob("result.json"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    finished = [r for r in rows(sweep) if r["status"] == "ok"]
    assert 2 <= len(finished) < 9
    assert (sweep / "report.csv").is_file()
    assert "interrupted: report of the finished jobs" in err
    resumed = harness(*args[3:])
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stderr.count("skip (done)") == len(finished)
    assert sum(r["status"] == "ok" for r in rows(sweep)) == 9


def test_failure_inside_a_strategy_is_an_error_row(tmp_path: Path, monkeypatch) -> None:
    from hydra import compose, initialize_config_dir

    from harness.run import run_job
    from strategies.engine import copy_backend
    from tests.test_registry import CONF

    def broken_copy(self, dst, src, after, blocking=False):
        raise OSError("injected failure in the copy path")

    monkeypatch.setattr(copy_backend.ThreadBackend, "copy", broken_copy)
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=["strategy=block_prefetch", "run.repeats=1", "run.progress=false",
                                           f"output_root={tmp_path}"])
    row = run_job(cfg, tmp_path)
    assert row["status"] == "error"
    assert row["error"] == "OSError: injected failure in the copy path"
    assert (tmp_path / "result.json").is_file()


def test_a_cuda_budget_caps_the_allocator_by_device_index_and_lifts_the_cap_after(monkeypatch) -> None:
    """torch refuses a device without an index (`cuda`), which is how jobs name the GPU: found on an H200. A cap
    inside another (a host build caps the whole job, its generations again) keeps the lower one."""
    calls = []
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: SimpleNamespace(total_memory=80e9))
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction",
                        lambda fraction, index: calls.append((fraction, index)))
    released = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: released.append(len(calls)))
    spec = BuildSpec(None, "tiny", torch.float32, torch.device("cuda"))
    budget = budget_bytes(JobSettings(None, spec, None, None, {}, 0, 1, 20.0))
    with pytest.raises(RuntimeError, match="inside"), memory_cap(spec.device, budget):
        assert budget == 20_000_000_000 and calls == [(0.25, 0)]
        assert released == [0], "the cached memory nothing uses is given back before the cap is set"
        with memory_cap(spec.device, 2 * budget):
            assert calls[-1] == (0.25, 0), "the lower cap holds"
        with memory_cap(spec.device, budget // 2):
            assert calls[-1] == (0.125, 0)
        assert calls[-1] == (0.25, 0), "the outer cap holds again"
        raise RuntimeError("inside")
    assert calls[-1] == (1.0, 0)
    count = len(calls)
    with memory_cap(spec.device, None), memory_cap(CPU, budget):
        assert len(calls) == count, "no budget, or no CUDA: nothing to cap"


def test_weights_that_cannot_go_home_keep_their_values_and_the_rest_go_home(monkeypatch) -> None:
    """A restore that fails (a full device) must not leave a weight empty: found when a capped H200 run left CLIP
    without its position embeddings and broke every later run in the process."""
    bundle, args, reference = tiny("flux")
    before = weights_of(bundle)
    handle = STRATEGIES.get("block_stream")().apply(bundle, ApplyContext(CPU))
    bundle.generate(args)
    original_to, calls = torch.Tensor.to, itertools.count()

    def failing_to(self, *a, **k):
        if k.get("copy") and next(calls) % 7 == 3:
            raise torch.OutOfMemoryError("device full")
        return original_to(self, *a, **k)

    monkeypatch.setattr(torch.Tensor, "to", failing_to)
    with pytest.raises(torch.OutOfMemoryError, match="device full"), pytest.warns(UserWarning, match="stay on"):
        handle.remove()
    monkeypatch.undo()
    assert_same_weights(before, bundle)
    assert torch.equal(bundle.generate(args), reference)
