"""One benchmark job: build, reference, apply, measure, compare, restore; always ends in a result row."""
from __future__ import annotations

import gc
import logging
import statistics
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from families.base import Bundle, GenerateArgs
from families.parallel_fill import GENERATOR
from harness.atomic import write_json
from harness.environment import environment
from harness.errors import HarnessError, SkipJob, gb_to_bytes
from harness.host_fit import HostMemoryShort, check_synthetic_fits
from harness.layout import RESULT_FILE
from harness.parity import ReferenceCache, compare, reference_key
from harness.probe import CudaMemory, StageClock, host_rss_peak_bytes
from harness.settings import JobSettings, resolve
from strategies.base import ApplyContext, Handle, Strategy
from strategies.none import NoOffload
from strategies.streaming import BlockStream
from strategies.engine.ledger import BudgetExceeded

log = logging.getLogger(__name__)
OOM_ERRORS: tuple[type[BaseException], ...] = (BudgetExceeded, torch.cuda.OutOfMemoryError)
HOST = torch.device("cpu")
# the resident run first; where it does not fit, the lossless schedule that holds the least on the device
REFERENCE_STRATEGIES: dict[str, Strategy] = {"none": NoOffload(),
                                             "block_stream+encoders": BlockStream(stream_encoders=True)}
_CAPS: dict[int, float] = {}  # the allocator fraction memory_cap set per CUDA device index


def requested_row(cfg: DictConfig) -> dict[str, Any]:
    """The row's settings as asked for (filled in before anything can fail)."""
    strategy = OmegaConf.to_container(cfg.strategy)
    run = cfg.run
    return dict(
        family=cfg.family.name, variant=cfg.family.get("variant"), scale=cfg.family.get("scale"),
        weights=cfg.family.get("weights"), strategy=strategy.get("name"),
        prefetch_depth=strategy.get("prefetch_depth"), resident_units=strategy.get("resident_units"),
        resident_gb=strategy.get("resident_gb"), placement=strategy.get("placement"),
        stream_encoders=strategy.get("stream_encoders"),
        device=str(run.device), dtype=str(run.dtype), height=run.height,
        width=run.width, frames=run.frames, steps=run.steps, seed=run.seed, warmup=run.warmup, repeats=run.repeats,
        vram_budget_gb=run.get("vram_budget_gb"), build_on=run.get("build_on"), status="error", error=None)


def settings_row(s: JobSettings) -> dict[str, Any]:
    described = s.strategy.describe()
    return dict(
        variant=s.spec.variant, scale=s.spec.scale, device=s.spec.device.type,
        dtype=str(s.spec.dtype).removeprefix("torch."), height=s.args.height, width=s.args.width,
        frames=s.args.frames, steps=s.args.steps, strategy=s.strategy.name,
        prefetch_depth=described.get("prefetch_depth"), resident_units=described.get("resident_units"),
        resident_gb=described.get("resident_gb"), placement=described.get("placement"),
        stream_encoders=described.get("stream_encoders"))


def reference_settings(s: JobSettings, built_on: str) -> dict[str, Any]:
    weights = s.spec.weights
    return dict(family=s.family.name, variant=s.spec.variant, scale=s.spec.scale, dtype=str(s.spec.dtype),
                device=s.spec.device.type, device_name=environment(s.spec.device)["device_name"],
                weights=f"{weights}@{weights.stat().st_mtime_ns}" if weights else f"synthetic:{GENERATOR}",
                build_on=built_on,
                args=repr(s.args), torch=torch.__version__, threads=torch.get_num_threads())


def release_memory() -> None:
    """Collect garbage and give back the cached device memory nothing uses, cuBLAS's workspaces included: cut from
    a large cached block, a workspace keeps its whole segment reserved (the suspected cause of an H100 run whose
    6 GB cap found 7.8 GiB reserved but unused; not yet confirmed on a GPU). A cap set after counts what is held."""
    gc.collect()
    if torch.cuda.is_available():
        clear_workspaces = getattr(torch._C, "_cuda_clearCublasWorkspaces", None)
        if clear_workspaces is not None:
            clear_workspaces()
        torch.cuda.empty_cache()


def build_weights_on(s: JobSettings, device: torch.device | None) -> Bundle:
    """Build the model with its weights on `device` (None: the compute device). Synthetic weights bound for host
    memory are sized first (a checkpoint always is: it loads through host memory), so a model larger than the host
    ends the job as `oom`, not the process."""
    spec = s.spec if device is None else replace(s.spec, build_device=device)
    if spec.weights is None and spec.weights_device.type == "cpu":
        check_synthetic_fits(s.family, spec)
    return s.family.build(spec)


def build_bundle(s: JobSettings) -> tuple[Bundle, str]:
    """Build the model where `run.build_on` says, and say where. `auto` builds in host memory when a VRAM budget is
    set on CUDA (the card being emulated never holds the whole model, and memory the build reserved would count
    against the cap), else on the device, and in host memory when the model does not fit there. Synthetic weights
    built on the host come from the CPU's generator: other values than a device build's."""
    cuda = s.spec.device.type == "cuda"
    if s.build_on == "host" or (s.build_on == "auto" and cuda and s.vram_budget_gb is not None):
        return build_weights_on(s, HOST), "host"
    if s.build_on == "device" or not cuda:
        return build_weights_on(s, None), "device"
    try:
        return build_weights_on(s, None), "device"
    except torch.cuda.OutOfMemoryError as exc:
        log.warning("the model does not fit on %s (%s): building it in host memory", s.spec.device,
                    str(exc).splitlines()[0])
    release_memory()
    return build_weights_on(s, HOST), "host"


def run_with(bundle: Bundle, strategy: Strategy, ctx: ApplyContext, args: GenerateArgs) -> torch.Tensor:
    """One generation with `strategy` applied, taken off again after."""
    handle = strategy.apply(bundle, ctx)
    try:
        return bundle.generate(args)
    finally:
        handle.remove()


def reference_output(bundle: Bundle, s: JobSettings, ctx: ApplyContext, built_on: str,
                     cache: ReferenceCache) -> tuple[torch.Tensor, str]:
    """The output the job must reproduce, and the strategy that made it: the resident run, or where the weights do
    not fit on the device (a model larger than the card, or than the budget of a host build) the leanest lossless
    schedule. From the cache when stored, else computed now (before the job's strategy)."""
    settings = reference_settings(s, built_on)
    names = list(REFERENCE_STRATEGIES)
    for name in names:
        key = reference_key(settings | {"reference_strategy": name})
        output = cache.load(key)
        if output is None:
            try:
                output = run_with(bundle, REFERENCE_STRATEGIES[name], ctx, s.args)
            except OOM_ERRORS as exc:
                if name == names[-1]:
                    raise
                log.warning("reference %s does not fit (%s): trying the next", name, str(exc).splitlines()[0])
                release_memory()
                continue
            cache.store(key, output, settings)
        return output, name


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def per_run(total: float | None, runs: int) -> float | None:
    """A total over `runs` generations as a per-generation figure (None where the strategy cannot count it)."""
    return None if total is None else total / runs


def measure(bundle: Bundle, handle: Handle, s: JobSettings) -> tuple[torch.Tensor, dict[str, Any]]:
    """Warmup, then timed repeats; latency median and spread, stage times, memory and copy figures."""
    device = s.spec.device
    cuda = CudaMemory(device) if device.type == "cuda" else None
    clock = StageClock(bundle)
    try:
        if cuda:
            cuda.reset()
        for _ in range(s.warmup):
            bundle.generate(s.args)
        warmup_peak = torch.cuda.max_memory_allocated(device) if cuda and s.warmup else None
        handle.reset_stats()
        if cuda:
            cuda.reset()
        runs = []
        for _ in range(s.repeats):
            output, times = clock.time(lambda: bundle.generate(s.args))
            runs.append(times)
            if cuda:
                cuda.sample()
        stats = handle.stats()
    finally:
        clock.remove()
    n = len(runs)
    median = lambda attr: statistics.median(getattr(r, attr) for r in runs)  # noqa: E731
    latencies = [r.total_s for r in runs]
    row: dict[str, Any] = dict(
        latency_s=statistics.median(latencies), latency_p10_s=percentile(latencies, 10),
        latency_p90_s=percentile(latencies, 90), encode_s=median("encode_s"), denoise_s=median("denoise_s"),
        decode_s=median("decode_s"), step_s=median("denoise_s") / s.args.steps,
        denoiser_calls=runs[0].denoiser_calls, peak_weights_bytes=stats["peak_weights_bytes"],
        pinned_bytes=stats.get("pinned_bytes"), h2d_bytes=per_run(stats.get("h2d_bytes"), n),
        copy_s=per_run(stats.get("copy_s"), n), exposed_copy_s=per_run(stats.get("exposed_copy_s"), n),
        overlap_efficiency=stats.get("overlap_efficiency"), peak_units_resident=stats.get("peak_units_resident"),
        resident_bytes=stats.get("resident_bytes"),
        streamed_units=stats.get("streamed_units"), streamed_bytes=per_run(stats.get("streamed_bytes"), n),
        sync_loads=stats.get("stream_sync_loads"),
        out_of_order_units=stats.get("stream_out_of_order"), host_rss_peak_bytes=host_rss_peak_bytes())
    if stats.get("resident_units") is not None:
        row["resident_units"] = stats["resident_units"]  # what the engine kept (resident_gb resolves to a count)
    row["h2d_gbps"] = row["h2d_bytes"] / row["copy_s"] / 1e9 if row["copy_s"] and row["h2d_bytes"] else None
    if cuda:
        row.update(cuda.peaks(), peak_vram_source="cuda", warmup_peak_vram_bytes=warmup_peak)
    else:
        row.update(peak_vram_bytes=stats["peak_weights_bytes"], peak_vram_reserved_bytes=None, peak_nvml_bytes=None,
                   peak_vram_source="ledger")
    return output, row


def budget_bytes(s: JobSettings) -> int | None:
    """The job's VRAM budget in bytes (`run.vram_budget_gb` counts decimal gigabytes)."""
    return gb_to_bytes(s.vram_budget_gb)


@contextmanager
def memory_cap(device: torch.device, budget: int | None) -> Iterator[None]:
    """On CUDA, cap the caching allocator at `budget` bytes while the block runs, as a card of that size would (a
    cap inside another keeps the lower one, and the outer one holds again after). Jobs wrap the generations; a
    model built on the host is capped for the whole job, since the card being emulated never held it."""
    if budget is None or device.type != "cuda":
        yield
        return
    index = device.index if device.index is not None else torch.cuda.current_device()  # torch wants an index
    total = torch.cuda.get_device_properties(index).total_memory
    previous = _CAPS.get(index, 1.0)
    release_memory()
    _CAPS[index] = min(previous, budget / total)
    torch.cuda.set_per_process_memory_fraction(_CAPS[index], index)
    try:
        yield
    finally:
        _CAPS[index] = previous
        torch.cuda.set_per_process_memory_fraction(previous, index)


def apply_and_measure(bundle: Bundle, s: JobSettings, ctx: ApplyContext) -> tuple[torch.Tensor, dict[str, Any]]:
    """Apply the job's strategy, measure under its VRAM budget, take the strategy off again; the figures include
    how long applying took (packing and pinning the host copy, for the engine)."""
    start = time.perf_counter()
    handle = s.strategy.apply(bundle, ctx)
    apply_s = time.perf_counter() - start
    try:
        with memory_cap(s.spec.device, ctx.vram_budget_bytes):
            output, measured = measure(bundle, handle, s)
    finally:
        handle.remove()
    return output, measured | {"apply_s": apply_s}


def execute(s: JobSettings, cfg: DictConfig, row: dict[str, Any]) -> None:
    """Build, reference, apply the strategy, measure, restore; fills `row`."""
    s.strategy.check_device(s.spec.device)
    start = time.perf_counter()
    bundle, built_on = build_bundle(s)
    row.update(build_on=built_on, build_s=time.perf_counter() - start)
    bundle.pipe.set_progress_bar_config(disable=not cfg.run.progress, leave=False)
    ctx = ApplyContext(s.spec.device, float(cfg.run.pin_memory_fraction), float(cfg.run.copy_timeout_s),
                       vram_budget_bytes=budget_bytes(s))
    on_host = built_on == "host"
    with memory_cap(s.spec.device, ctx.vram_budget_bytes if on_host else None):
        reference_ctx = ctx if on_host else replace(ctx, vram_budget_bytes=None)  # a device build holds it all
        reference, reference_strategy = reference_output(bundle, s, reference_ctx, built_on,
                                                         ReferenceCache(Path(cfg.reference_cache)))
        output, measured = apply_and_measure(bundle, s, ctx)
    row.update(measured)
    row.update(compare(output, reference), reference_strategy=reference_strategy)
    row["status"] = "ok"


def run_job(cfg: DictConfig, job_dir: Path) -> dict[str, Any]:
    """Run one job and write its result row to `job_dir/result.json`; never raises for a failed job.

    Ctrl-C still leaves a row (status `interrupted`, rerun when the sweep resumes) before it propagates.
    """
    row = requested_row(cfg)
    device = None
    try:
        s = resolve(cfg)
        device = s.spec.device
        row.update(settings_row(s))
        execute(s, cfg, row)
    except SkipJob as exc:
        row.update(status="skipped", error=str(exc))
    except HostMemoryShort as exc:
        row.update(status="oom", error=str(exc))
    except OOM_ERRORS as exc:
        budget = row.get("vram_budget_gb")
        prefix = f"run.vram_budget_gb={budget} is too small: " if budget is not None else ""
        row.update(status="oom", error=prefix + f"{type(exc).__name__}: {exc}".splitlines()[0])
        if device is not None and device.type == "cuda":
            row["peak_vram_bytes"] = torch.cuda.max_memory_allocated(device)
    except HarnessError as exc:
        row.update(status="error", error=str(exc), bad_input=True)
    except KeyboardInterrupt:
        row.update(status="interrupted", error="interrupted (Ctrl-C); rerun the sweep to finish it")
        finish(row, job_dir, device)
        raise
    except Exception as exc:
        row.update(status="error", error=f"{type(exc).__name__}: {exc}".splitlines()[0])
        log.debug("job failed:\n%s", traceback.format_exc())
    finish(row, job_dir, device)
    return row


def finish(row: dict[str, Any], job_dir: Path, device: torch.device | None) -> None:
    """Free what the job held and write its row atomically."""
    release_memory()
    row.update(environment(device))
    write_json(job_dir / RESULT_FILE, row)
