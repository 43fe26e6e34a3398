"""CPU benchmark of the streaming engine: ratios measured side by side in one run (medians of interleaved runs).

    python benchmarks/engine_cpu.py [--rounds 5] [--families sd15 flux]

1. Small-scale families: latency of block_stream, block_prefetch (k=1,2,4) and resident-unit variants over `none`,
   and the copy floor: the core time of copying every unit, which no CPU schedule can hide from busy cores.
2. A synthetic transfer-bound stack (copy time ~ compute time per unit): overlap efficiency of block_prefetch.
3. Engine overhead per unit: near-zero-byte units, streamed vs resident, per unit call.
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Any, Callable

import torch

from families.base import Bundle, GenerateArgs, build_with_defaults
from strategies.base import STRATEGIES, ApplyContext
from strategies.engine.copy_backend import raw_copy
from strategies.engine.offload import EngineHandle, Plan
from strategies.engine.testbed import stack_bundle

CPU = torch.device("cpu")
CONFIGS = [("none", {}), ("block_stream", {}), ("block_prefetch", {"prefetch_depth": 1}),
           ("block_prefetch", {"prefetch_depth": 2}), ("block_prefetch", {"prefetch_depth": 4}),
           ("block_prefetch", {"prefetch_depth": 1, "resident_units": "half"}),
           ("block_prefetch", {"prefetch_depth": 1, "resident_units": "half", "placement": "even"})]


def label(strategy: str, params: dict[str, Any]) -> str:
    return " ".join([strategy, *(f"{k}={v}" for k, v in params.items())])


def timed_generate(bundle: Bundle, args: GenerateArgs, strategy: str, params: dict[str, Any]) -> float:
    handle = STRATEGIES.get(strategy)(**params).apply(bundle, ApplyContext(CPU))
    try:
        bundle.generate(args)
        start = time.perf_counter()
        bundle.generate(args)
        return time.perf_counter() - start
    finally:
        handle.remove()


def median_seconds(fn: Callable[[], Any], repeats: int = 10) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def streamed_bytes(bundle: Bundle, args: GenerateArgs) -> int:
    """Bytes block_stream copies in one generation."""
    handle = EngineHandle(bundle, ApplyContext(CPU), Plan(reload_components=True, stream=True))
    try:
        bundle.generate(args)
        handle.reset_stats()
        bundle.generate(args)
        return handle.stats()["h2d_bytes"]
    finally:
        handle.remove()


def copy_core_seconds_per_byte(nbytes: int = 256 << 20) -> float:
    """The cheapest core time per copied byte: a one-core memmove or ATen's copy on every core."""
    src = torch.randint(0, 255, (nbytes,), dtype=torch.uint8)
    dst = torch.empty_like(src)
    one_core = median_seconds(lambda: raw_copy(dst, src), 5)
    all_cores = median_seconds(lambda: dst.copy_(src), 5) * torch.get_num_threads()
    return min(one_core, all_cores) / nbytes


def family_ratios(name: str, rounds: int) -> None:
    bundle, args = build_with_defaults(name, "small", CPU, torch.float32)
    units = sum(len(c.units) for c in bundle.denoisers)
    configs = [(s, {k: (units // 2 if v == "half" else v) for k, v in p.items()}) for s, p in CONFIGS]
    times: dict[str, list[float]] = {label(s, p): [] for s, p in configs}
    for _ in range(rounds):
        for strategy, params in configs:
            times[label(strategy, params)].append(timed_generate(bundle, args, strategy, params))
    base = statistics.median(times["none"])
    floor = 1 + streamed_bytes(bundle, args) * copy_core_seconds_per_byte() / torch.get_num_threads() / base
    print(f"\n## {name} small ({units} units, {args.steps} steps, {args.width}x{args.height}), "
          f"median of {rounds} interleaved runs")
    print(f"copy floor of streaming every unit: {floor:.3f} x none (the copies' core time spread over "
          f"{torch.get_num_threads()} cores that the compute already keeps busy)")
    print(f"{'strategy':48s} {'median s':>9s} {'vs none':>8s}")
    for key, values in times.items():
        median = statistics.median(values)
        print(f"{key:48s} {median:9.3f} {median / base:8.3f}")


def overlap(rounds: int) -> None:
    """12 units of 32 MiB. Tokens are chosen so a unit's compute is bound by arithmetic, not by reading its
    weights (at least 4x its copy, as a diffusion block at full resolution), and every copy is slowed to last as
    long as that compute (an emulated slow link, like a GPU's copy engine): copy time equals compute time, so
    without overlap a run takes about twice the resident time."""
    for tokens in (8, 16, 32, 64, 128):
        bundle = stack_bundle([4096] * 12, [list(range(12))], width=1024, tokens=tokens)
        block = bundle.components[0].units[0][1]
        x = torch.randn(tokens, 1024)
        compute_s = median_seconds(lambda: block(x))
        weights = torch.cat([p.flatten() for p in block.parameters()])
        target = torch.empty_like(weights)
        copy_s = median_seconds(lambda: raw_copy(target, weights))
        if compute_s > 4 * copy_s:
            break
    slow_link = max(compute_s - copy_s, 0.0)
    args = GenerateArgs(4, 0, 0, None, seed=0)
    effs, ratios, stream_ratios = [], [], []
    for _ in range(rounds):
        resident = timed_generate(bundle, args, "none", {})
        for depth, sink in ((2, ratios), (0, stream_ratios)):
            ctx = ApplyContext(CPU, copy_delay=lambda: slow_link)
            handle = EngineHandle(bundle, ctx, Plan(reload_components=True, stream=True, depth=depth))
            try:
                bundle.generate(args)
                handle.reset_stats()
                start = time.perf_counter()
                bundle.generate(args)
                sink.append((time.perf_counter() - start) / resident)
                if depth:
                    effs.append(handle.stats()["overlap_efficiency"])
            finally:
                handle.remove()
    print(f"\n## transfer-bound stack (12 units x 32 MiB, {tokens} tokens; per unit: compute "
          f"{compute_s * 1e3:.2f} ms, copy {copy_s * 1e3:.2f} ms + {slow_link * 1e3:.2f} ms emulated slow link)")
    print(f"overlap efficiency of block_prefetch k=2 (hidden copy / copy time): median {statistics.median(effs):.3f}")
    print(f"latency vs resident: block_prefetch k=2 {statistics.median(ratios):.3f}, "
          f"block_stream {statistics.median(stream_ratios):.3f} (no overlap would be about 2)")


def overhead(rounds: int) -> None:
    units, steps = 200, 20
    bundle = stack_bundle([1] * units, [list(range(units))], width=1, tokens=1)
    args = GenerateArgs(steps, 0, 0, None, seed=0)
    per_unit = []
    for _ in range(rounds):
        resident = timed_generate(bundle, args, "none", {})
        streamed = timed_generate(bundle, args, "block_prefetch", {"prefetch_depth": 2})
        per_unit.append((streamed - resident) / (units * steps))
    print(f"\n## engine overhead per unit call (near-zero-byte units, {units} units x {steps} calls)")
    print(f"median {statistics.median(per_unit) * 1e6:.1f} us per unit (hooks, scheduling, one copy each)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--families", nargs="+", default=["sd15", "flux"])
    opts = parser.parse_args()
    print(f"# engine_cpu: torch {torch.__version__}, {torch.get_num_threads()} threads")
    overhead(opts.rounds)
    overlap(opts.rounds)
    for name in opts.families:
        family_ratios(name, opts.rounds)


if __name__ == "__main__":
    main()
