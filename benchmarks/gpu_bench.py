"""The GPU check: H2D bandwidth, the tiny matrix on the device, and full-scale FLUX.1-dev and LTX-Video with every
core strategy and every peer, a resident-units sweep and parity; first, for each of the two, the resident run alone
and beside host-to-device copies without pause (`flux:contention`, `ltx_video:contention`): whether copies slow the
compute itself. Writes report files into --out as it goes.

    python -m benchmarks.gpu_bench --out DIR                       (on an NVIDIA GPU; see gpu_check.sh)
    python -m benchmarks.gpu_bench --out DIR --device cpu --scale tiny   (the same logic on a CPU, in seconds)

A deadline (--budget-s) bounds the whole run: what does not fit is listed as not run, never silently dropped. Last,
FLUX.1-dev built in host memory runs through the harness under a 12 GB budget (`flux:host_build` for --only/--skip)
if 150 s are left.
"""
from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import torch

from benchmarks.contention import copies_beside
from benchmarks.gpu_report import write_gpu_report
from families.base import FAMILIES, Bundle, BuildSpec, GenerateArgs, build_with_defaults
from harness.environment import environment
from harness.errors import SkipJob
from harness.parity import compare
from harness.probe import StageClock, StageTimes
from harness.run import OOM_ERRORS, apply_and_measure, budget_bytes, run_with
from harness.settings import JobSettings
from strategies.base import SHARED_KNOBS, STRATEGIES, ApplyContext
from strategies.engine.host_memory import HostBuffer
from strategies.none import NoOffload

PEERS = ["diffusers_group_block", "diffusers_group_leaf", "diffusers_model_offload", "diffusers_sequential"]
# warm-up and measured runs of the slow peers (ours: 1 and 2); diffusers_sequential takes 20 s a run on FLUX.1-dev
PEER_RUNS = {peer: (1, 1) for peer in PEERS} | {"diffusers_sequential": (0, 1)}
CORE = [("none", {}), ("drop_and_reload", {}), ("block_stream", {}), ("block_prefetch", {"prefetch_depth": 1}),
        ("block_prefetch", {"prefetch_depth": 2}), ("block_prefetch", {"prefetch_depth": 4})]
TINY_CONFIGS = [*CORE[:3], CORE[4], ("block_prefetch", {"prefetch_depth": 2, "stream_encoders": True}),
                *((peer, {}) for peer in PEERS)]


def label(strategy: str, params: dict[str, Any]) -> str:
    """`block_prefetch/prefetch_depth=2/resident_units=0.5`: names a configuration for --skip and --only."""
    return "/".join([strategy, *(f"{k}={v}" for k, v in params.items())])


class Run:
    """Deadline, output folder, our configurations' measured runs, and the rows gathered so far (written after
    every row)."""

    def __init__(self, out: Path, budget_s: float, repeats: int = 2) -> None:
        self.out = out
        self.repeats = repeats
        self.deadline = time.monotonic() + budget_s
        self.rows: list[dict[str, Any]] = []
        out.mkdir(parents=True, exist_ok=True)

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def log(self, text: str) -> None:
        print(text, flush=True)

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        with open(self.out / "rows.jsonl", "a") as fh:
            fh.write(json.dumps(row, default=str) + "\n")


def h2d_bandwidth(device: torch.device, gib: float = 1.0) -> dict[str, float]:
    """Host-to-device GB/s (median of 5 copies of `gib` GiB) from memory pinned by torch's allocator, pinned by the
    engine (registered pages) and pageable, and how long pinning `gib` GiB took each way."""
    n = int(gib * 2**30)
    cuda = device.type == "cuda"
    dst = torch.empty(n, dtype=torch.uint8, device=device)
    result = {}
    for kind in ("pinned", "registered", "pageable"):
        start = time.perf_counter()
        buffer = HostBuffer(n, pin=cuda) if kind == "registered" else None
        src = buffer.tensor if buffer else torch.empty(n, dtype=torch.uint8, pin_memory=kind == "pinned" and cuda)
        src.fill_(1)
        result[f"alloc_{kind}_s"] = time.perf_counter() - start
        times = []
        for _ in range(6):
            if cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            dst.copy_(src, non_blocking=kind != "pageable")
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        result[f"h2d_{kind}_gbps"] = n / statistics.median(times[1:]) / 1e9
        if buffer:
            buffer.release()
    return result


def build(family: str, variant: str | None, scale: str, device: torch.device, dtype: torch.dtype,
          overrides: dict[str, int], build_device: torch.device | None = None) -> tuple[Bundle, GenerateArgs]:
    bundle, args = build_with_defaults(family, scale, device, dtype, variant, build_device)
    return bundle, dataclasses.replace(args, **overrides)


def resident_output(bundle: Bundle, args: GenerateArgs) -> torch.Tensor:
    """The reference: the whole model on the device (moved there and back if it was built in host memory)."""
    return run_with(bundle, NoOffload(), ApplyContext(bundle.device), args)


def snapshot(bundle: Bundle) -> dict[str, tuple[str, float]]:
    """Device and checksum of every tensor (tiny models: every tensor is small)."""
    return {f"{c.name}.{n}": (str(t.device), float(t.float().sum()))
            for c in bundle.components for n, t in [*c.module.named_parameters(), *c.module.named_buffers()]
            if t.numel() < 2**22}


def changed_weights(before: dict[str, tuple[str, float]], after: dict[str, tuple[str, float]],
                    shown: int = 5) -> list[str]:
    """The first `shown` tensors whose device or checksum differ, or that appeared or vanished."""
    changes = [f"{name}: {before.get(name)} -> {after.get(name)}" for name in sorted(before.keys() | after.keys())
               if before.get(name) != after.get(name)]
    return changes[:shown] + ([f"... {len(changes) - shown} more"] if len(changes) > shown else [])


def run_strategy(run: Run, bundle: Bundle, args: GenerateArgs, reference: torch.Tensor, strategy: str,
                 params: dict[str, Any], warmup: int, repeats: int, section: str,
                 before: dict[str, tuple[str, float]] | None = None) -> dict[str, Any]:
    """Apply, measure, compare, remove; one row whatever happens (with `before`: are the weights intact after).
    `params` may hold `vram_budget_gb`, the run's memory budget, besides the strategy's knobs."""
    params = dict(params)
    budget_gb = params.pop("vram_budget_gb", None)
    row: dict[str, Any] = dict(section=section, family=bundle.family, variant=bundle.variant, scale=bundle.scale,
                               strategy=strategy, **{k: params.get(k) for k in SHARED_KNOBS},
                               device=bundle.device.type, dtype=str(bundle.dtype).removeprefix("torch."),
                               height=args.height, width=args.width, frames=args.frames, steps=args.steps, seed=0,
                               warmup=warmup, repeats=repeats, vram_budget_gb=budget_gb, status="error", error=None)
    strat = STRATEGIES.get(strategy)(**params)
    described = strat.describe()
    row.update({k: described.get(k, row[k]) for k in SHARED_KNOBS})
    settings = JobSettings(FAMILIES.get(bundle.family)(), BuildSpec(bundle.variant, bundle.scale, bundle.dtype,
                           bundle.device), args, strat, params, warmup, repeats, budget_gb)
    start = time.monotonic()
    try:
        strat.check_device(bundle.device)
        ctx = ApplyContext(bundle.device, pin_memory_fraction=0.6, vram_budget_bytes=budget_bytes(settings))
        output, measured = apply_and_measure(bundle, settings, ctx)
        row.update(measured)
        row.update(compare(output, reference), reference_strategy="none", status="ok")
    except OOM_ERRORS as exc:
        row.update(status="oom", error=str(exc).splitlines()[0])
    except SkipJob as exc:
        row.update(status="skipped", error=str(exc))
    except Exception as exc:
        row.update(status="error", error=f"{type(exc).__name__}: {exc}".splitlines()[0])
        run.log(traceback.format_exc(limit=6))
    row["wall_s"] = time.monotonic() - start
    if before is not None:
        row["weights_changed"] = changed_weights(before, snapshot(bundle))
        row["weights_intact"] = not row["weights_changed"]
    row.update(environment(bundle.device))
    run.add(row)
    run.log(f"[{section}] {bundle.family} {strategy} {params}: {row['status']} "
            f"latency={row.get('latency_s')} step={row.get('step_s')} peak={row.get('peak_vram_bytes')} "
            f"exact={row.get('parity_exact')} {row.get('error') or ''}")
    if bundle.device.type == "cuda":
        torch.cuda.empty_cache()
    return row


def tiny_matrix(run: Run, device: torch.device, dtype: torch.dtype, strategies: set[str] | None,
                build_device: torch.device | None = None) -> None:
    """Every family x every strategy at tiny scale on the device: catches device-placement bugs in seconds. Built in
    host memory (`build_device`), it checks that every strategy takes the weights from there and puts them back."""
    section = "tiny" if build_device is None else "tiny-host"
    for family in FAMILIES.names():
        if run.left() < 0:
            run.log(f"[{section}] not run (deadline): {family}")
            continue
        bundle, args = build(family, None, "tiny", device, dtype, {}, build_device)
        before = snapshot(bundle)
        reference = resident_output(bundle, args)
        for strategy, params in TINY_CONFIGS:
            if strategies is not None and strategy not in strategies:
                continue
            run_strategy(run, bundle, args, reference, strategy, params, 0, 1, section, before)
        del bundle
        gc.collect()


def copy_contention(run: Run, bundle: Bundle, args: GenerateArgs, rounds: int = 3) -> None:
    """The resident run alone and beside host-to-device copies without pause, interleaved (medians of `rounds`):
    whether the copies slow the compute itself, apart from any wait for them."""
    handle = NoOffload().apply(bundle, ApplyContext(bundle.device))
    clock = StageClock(bundle)
    alone: list[StageTimes] = []
    beside: list[StageTimes] = []
    rates = []
    try:
        bundle.generate(args)
        for _ in range(rounds):
            alone.append(clock.time(lambda: bundle.generate(args))[1])
            with copies_beside(bundle.device) as copied:
                beside.append(clock.time(lambda: bundle.generate(args))[1])
            rates.append(copied.gbps)
    finally:
        clock.remove()
        handle.remove()
    row: dict[str, Any] = dict(section="contention", family=bundle.family, variant=bundle.variant,
                               scale=bundle.scale, strategy="none", device=bundle.device.type,
                               dtype=str(bundle.dtype).removeprefix("torch."), rounds=rounds, status="ok",
                               copy_gbps=statistics.median(rates))
    for stage in ("total", "encode", "denoise", "decode"):
        for name, runs in (("alone", alone), ("beside", beside)):
            row[f"{stage}_{name}_s"] = statistics.median(getattr(r, f"{stage}_s") for r in runs)
    row.update(environment(bundle.device))
    run.add(row)
    run.log(f"[contention] {bundle.family}: copies at {row['copy_gbps']:.1f} GB/s; run {row['total_alone_s']:.3f} s "
            f"alone, {row['total_beside_s']:.3f} s beside them; denoising {row['denoise_alone_s']:.3f} s, "
            f"{row['denoise_beside_s']:.3f} s")


def full_scale(run: Run, family: str, variant: str | None, scale: str, device: torch.device, dtype: torch.dtype,
               overrides: dict[str, int], configs: list[tuple[str, dict[str, Any]]], min_left_s: float,
               wanted: Callable[[str], bool], reserve_s: float = 0.0) -> None:
    """Every `wanted` configuration (by `family:label`) on one full-scale build, while more than `min_left_s` +
    `reserve_s` (kept for what runs after) is left; peers measure one run after the warm-up, diffusers_sequential
    only the one run."""
    configs = [(strategy, params) for strategy, params in configs if wanted(f"{family}:{label(strategy, params)}")]
    contention = wanted(f"{family}:contention")
    if not configs and not contention:
        return
    start = time.monotonic()
    bundle, args = build(family, variant, scale, device, dtype, overrides)
    run.log(f"[{family}] built {scale} in {time.monotonic() - start:.1f} s; args {args}")
    reference = resident_output(bundle, args)
    if contention and run.left() > min_left_s + reserve_s:
        copy_contention(run, bundle, args)
    units = sum(len(c.units) for c in bundle.denoisers)
    for strategy, params in configs:
        params = {k: (max(1, round(units * v)) if k == "resident_units" and isinstance(v, float) else v)
                  for k, v in params.items()}
        if run.left() < (60 if strategy == "diffusers_sequential" else min_left_s) + reserve_s:
            run.log(f"[{family}] not run (deadline): {strategy} {params}")
            continue
        warmup, repeats = PEER_RUNS.get(strategy, (1, run.repeats))
        run_strategy(run, bundle, args, reference, strategy, params, warmup, repeats, family)
    del bundle, reference
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def host_build_job(run: Run, device: torch.device, scale: str, sizes: dict[str, int], budget_gb: float = 12.0) -> None:
    """FLUX.1-dev built in host memory and run through the harness as a card of `budget_gb` would run it: the budget
    covers the whole job, so the resident reference cannot run and the leanest lossless schedule is the reference."""
    from hydra import compose, initialize_config_dir

    from harness.run import run_job

    root = Path(tempfile.mkdtemp(prefix="host-build-"))  # the reference output stays out of the report folder
    overrides = ["family=flux", "family.variant=dev", f"family.scale={scale}", "strategy=block_prefetch",
                 "strategy.prefetch_depth=2", "strategy.stream_encoders=true", "run.build_on=host",
                 f"run.vram_budget_gb={budget_gb}", f"run.device={device}", "run.warmup=1",
                 f"run.repeats={run.repeats}", "run.progress=false", f"output_root={root}",
                 *(f"run.{k}={v}" for k, v in sizes.items())]
    with initialize_config_dir(str(Path(__file__).resolve().parent.parent / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    start = time.monotonic()
    row = run_job(cfg, root)
    row.update(section="flux-host", wall_s=time.monotonic() - start)
    run.add(row)
    run.log(f"[flux-host] built on {row.get('build_on')}: {row['status']} latency={row.get('latency_s')} "
            f"peak={row.get('peak_vram_bytes')} apply={row.get('apply_s')} reference={row.get('reference_strategy')} "
            f"exact={row.get('parity_exact')} wall={row['wall_s']:.0f} s {row.get('error') or ''}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--scale", default="full")
    parser.add_argument("--budget-s", type=float, default=420)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2, help="measured runs of our configurations (peers: 1)")
    parser.add_argument("--tiny", default="all", help="strategies of the tiny matrix: all, none, or a comma list")
    parser.add_argument("--skip", default="", help="comma list of family:label configurations not to run")
    parser.add_argument("--only", default="", help="comma list of family:label configurations to run alone")
    parser.add_argument("--no-video", action="store_true")
    parser.add_argument("--video-reserve-s", type=float, default=None,
                        help="seconds of the budget FLUX leaves for the video family (default 100 at full scale)")
    opts = parser.parse_args()
    skip, only = (set(filter(None, names.split(","))) for names in (opts.skip, opts.only))

    def wanted(key: str) -> bool:
        return key not in skip and (not only or key in only)

    device = torch.device(opts.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    run = Run(opts.out, opts.budget_s, opts.repeats)
    env = environment(device)
    run.log(f"# gpu_check on {env['device_name']} (torch {env['torch_version']}, diffusers {env['diffusers_version']})")
    bandwidth = h2d_bandwidth(device, 1.0 if device.type == "cuda" else 0.05)
    run.log(f"h2d: {json.dumps(bandwidth)}")
    (opts.out / "bandwidth.json").write_text(json.dumps(bandwidth | env, indent=1))
    if opts.tiny != "none":
        tiny_strategies = None if opts.tiny == "all" else set(opts.tiny.split(","))
        tiny_matrix(run, device, dtype, tiny_strategies)
        if device.type == "cuda":  # on a CPU the host is the device
            tiny_matrix(run, device, dtype, tiny_strategies, torch.device("cpu"))
    sizes = {"steps": opts.steps} if opts.scale == "full" else {}
    # most telling first: the deadline drops configurations from the end
    prefetch2 = {"prefetch_depth": 2}
    with_encoders = prefetch2 | {"stream_encoders": True}
    flux_configs = [CORE[0], CORE[4], ("diffusers_group_block", {}),
                    ("block_prefetch", with_encoders), ("block_stream", {"stream_encoders": True}),
                    # a 24 GB card: 12 GB of blocks stay, the rest streams with the encoders
                    ("block_prefetch", with_encoders | {"resident_gb": 12.0}),
                    ("block_prefetch", with_encoders | {"resident_gb": 12.0, "placement": "largest"}),
                    CORE[2], CORE[1],
                    # the budget path: a memory fraction the run must fit in, and one it cannot
                    ("block_prefetch", with_encoders | {"vram_budget_gb": 6.0}), ("none", {"vram_budget_gb": 24.0}),
                    ("block_prefetch", prefetch2 | {"resident_units": 0.5}),
                    # every peer before the rest of the sweep: on the H100 the deadline left three peers out
                    ("diffusers_group_leaf", {}), ("diffusers_sequential", {}), ("diffusers_model_offload", {}),
                    ("block_prefetch", prefetch2 | {"resident_units": 0.5, "placement": "largest"}),
                    ("block_prefetch", prefetch2 | {"resident_units": 0.25}),
                    ("block_prefetch", prefetch2 | {"resident_units": 0.75}), CORE[3], CORE[5]]
    video = not opts.no_video
    reserve_s = opts.video_reserve_s if opts.video_reserve_s is not None else 100.0 if opts.scale == "full" else 0.0
    full_scale(run, "flux", "dev", opts.scale, device, dtype, sizes, flux_configs, 20, wanted,
               reserve_s=reserve_s if video else 0.0)
    video_sizes = sizes | ({"frames": 49, "height": 480, "width": 704} if opts.scale == "full" else {})
    video_configs = [CORE[0], CORE[4], ("diffusers_group_block", {}), ("block_prefetch", with_encoders), CORE[2],
                     ("block_prefetch", prefetch2 | {"resident_units": 0.5}), ("diffusers_model_offload", {})]
    if video:
        full_scale(run, "ltx_video", "2b", opts.scale, device, dtype, video_sizes, video_configs, 10, wanted)
    if wanted("flux:host_build"):
        if run.left() > (150 if opts.scale == "full" else 0):
            host_build_job(run, device, opts.scale, sizes)
        else:
            run.log("[flux-host] not run (deadline): FLUX.1-dev built in host memory")
    write_gpu_report(run.rows, bandwidth, opts.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
