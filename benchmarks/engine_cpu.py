"""CPU benchmark of the streaming engine: ratios measured side by side in one run (medians of interleaved runs).

    python -m benchmarks.engine_cpu [--rounds 5] [--families sd15 flux]

1. Small-scale families: latency of block_stream, block_prefetch (k=1,2,4) and resident-unit variants over `none`,
   and two copy floors: the core time of copying every unit (which no CPU schedule can hide from cores the
   compute keeps busy), and the wall time of those copies on every core (block_stream's way of copying).
   Then `none` while a thread copies without pause: why a copy thread beside the compute costs more than it hides.
2. A synthetic transfer-bound stack (copy time ~ compute time per unit): overlap efficiency of block_prefetch; and
   with copies 2.5x the compute and half the units resident, the two placement policies.
3. Engine overhead per unit: near-zero-byte units, streamed vs resident, per unit call.
"""
from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch

from benchmarks.contention import copies_beside
from families.base import Bundle, GenerateArgs, build_with_defaults
from strategies.base import STRATEGIES, ApplyContext
from strategies.engine.copy_backend import raw_copy
from strategies.engine.offload import EngineHandle, Plan
from strategies.engine.testbed import stack_bundle

CPU = torch.device("cpu")
CONFIGS = [("none", {}), ("block_stream", {}), ("block_prefetch", {"prefetch_depth": 1}),
           ("block_prefetch", {"prefetch_depth": 2}), ("block_prefetch", {"prefetch_depth": 4}),
           ("block_prefetch", {"prefetch_depth": 1, "resident_units": "half", "placement": "largest"}),
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


def copy_seconds_per_byte(nbytes: int = 256 << 20) -> tuple[float, float]:
    """Core time per copied byte (the cheaper of a one-core memmove and ATen's copy on every core), and wall time
    per byte of ATen's copy on every core."""
    src = torch.randint(0, 255, (nbytes,), dtype=torch.uint8)
    dst = torch.empty_like(src)
    one_core = median_seconds(lambda: raw_copy(dst, src), 5)
    all_cores = median_seconds(lambda: dst.copy_(src), 5)
    return min(one_core, all_cores * torch.get_num_threads()) / nbytes, all_cores / nbytes


def family_ratios(name: str, rounds: int) -> None:
    bundle, args = build_with_defaults(name, "small", CPU, torch.float32)
    units = sum(len(c.units) for c in bundle.denoisers)
    configs = [(s, {k: (units // 2 if v == "half" else v) for k, v in p.items()}) for s, p in CONFIGS]
    times: dict[str, list[float]] = {label(s, p): [] for s, p in configs}
    for _ in range(rounds):
        for strategy, params in configs:
            times[label(strategy, params)].append(timed_generate(bundle, args, strategy, params))
    base = statistics.median(times["none"])
    core_per_byte, wall_per_byte = copy_seconds_per_byte()
    copied = streamed_bytes(bundle, args)
    with copies_beside(CPU):
        beside = timed_generate(bundle, args, "none", {})
    print(f"\n## {name} small ({units} units, {args.steps} steps, {args.width}x{args.height}), "
          f"median of {rounds} interleaved runs")
    print(f"copy floors of streaming every unit ({copied / 2**30:.2f} GiB a run): core time "
          f"{1 + copied * core_per_byte / torch.get_num_threads() / base:.3f} x none (spread over "
          f"{torch.get_num_threads()} cores the compute already keeps busy), wall time on every core "
          f"{1 + copied * wall_per_byte / base:.3f} x none")
    print(f"none while a thread copies without pause: {beside / base:.2f} x none (the compute's threads "
          "wait for the one the copy thread displaced)")
    print(f"{'strategy':48s} {'median s':>9s} {'vs none':>8s}")
    for key, values in times.items():
        median = statistics.median(values)
        print(f"{key:48s} {median:9.3f} {median / base:8.3f}")


@dataclass
class Calibrated:
    """A stack of 12 units of 32 MiB with compute-bound units, and one unit's compute and copy seconds."""

    bundle: Bundle
    tokens: int
    compute_s: float
    copy_s: float

    def streamed_run(self, plan: Plan, link_s: float, rounds: int) -> tuple[list[float], list[float]]:
        """Latency ratios to the resident run and overlap efficiencies of `plan`, every copy taking `link_s`
        longer (an emulated slow link, like a GPU's copy engine)."""
        args = GenerateArgs(4, 0, 0, None, seed=0)
        ratios, effs = [], []
        for _ in range(rounds):
            resident = timed_generate(self.bundle, args, "none", {})
            handle = EngineHandle(self.bundle, ApplyContext(CPU, copy_delay=lambda: link_s), plan)
            try:
                self.bundle.generate(args)
                handle.reset_stats()
                start = time.perf_counter()
                self.bundle.generate(args)
                ratios.append((time.perf_counter() - start) / resident)
                effs.append(handle.stats()["overlap_efficiency"])
            finally:
                handle.remove()
        return ratios, effs


def calibrated_stack() -> Calibrated:
    """Tokens are chosen so a unit's compute is bound by arithmetic, not by reading its weights (at least 4x its
    copy, as a diffusion block at full resolution)."""
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
    return Calibrated(bundle, tokens, compute_s, copy_s)


def overlap(stack: Calibrated, rounds: int) -> None:
    """Every copy slowed to last as long as a unit's compute: without overlap a run takes about twice the
    resident time."""
    link_s = max(stack.compute_s - stack.copy_s, 0.0)
    ratios, effs = stack.streamed_run(Plan(reload_components=True, stream=True, depth=2), link_s, rounds)
    stream_ratios, _ = stack.streamed_run(Plan(reload_components=True, stream=True, depth=0), link_s, rounds)
    print(f"\n## transfer-bound stack (12 units x 32 MiB, {stack.tokens} tokens; per unit: compute "
          f"{stack.compute_s * 1e3:.2f} ms, copy {stack.copy_s * 1e3:.2f} ms + {link_s * 1e3:.2f} ms emulated slow "
          "link)")
    print(f"overlap efficiency of block_prefetch k=2 (hidden copy / copy time): median {statistics.median(effs):.3f}")
    print(f"latency vs resident: block_prefetch k=2 {statistics.median(ratios):.3f}, "
          f"block_stream {statistics.median(stream_ratios):.3f} (no overlap would be about 2)")


def placement(stack: Calibrated, rounds: int, link_ratio: float = 2.5) -> None:
    """Half the units resident while each copy takes `link_ratio` times a unit's compute (FLUX.1-dev's blocks on
    an H200 copy for about 2.5x their compute). All units are the same size, so `largest` keeps the first six: one
    resident stretch then one streamed stretch, as largest-first does with FLUX's double blocks."""
    link_s = max(link_ratio * stack.compute_s - stack.copy_s, 0.0)
    copies = 6 * link_ratio / 12
    print(f"\n## placement on the transfer-bound stack (6 of 12 units resident, copy {link_ratio:g}x compute), "
          f"median of {rounds}\nthe streamed units' copies take {copies:.2f}x the resident compute (a run starts with "
          f"the first units already copied at the end of the run before)")
    for policy in ("largest", "even"):
        plan = Plan(reload_components=True, stream=True, depth=2, resident_units=6, placement=policy)
        ratios, effs = stack.streamed_run(plan, link_s, rounds)
        print(f"{policy:8s} latency vs resident {statistics.median(ratios):.3f}, overlap efficiency "
              f"{statistics.median(effs):.3f}")


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
    stack = calibrated_stack()
    overlap(stack, opts.rounds)
    placement(stack, opts.rounds)
    for name in opts.families:
        family_ratios(name, opts.rounds)


if __name__ == "__main__":
    main()
