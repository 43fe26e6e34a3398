"""The README's table of families, generated from the code: full-scale sizes counted on the meta device,
denoiser calls per step counted by running the tiny pipeline.

    python -m harness.family_table
"""
from __future__ import annotations

import torch

from families.base import FAMILIES, BuildSpec, build_with_defaults
from families.synthetic import count_parameters
from families.units import module_bytes
from strategies.engine.hooks import HookSet

META = torch.device("meta")


def calls_per_step(family: str, variant: str) -> dict[str, float]:
    """Calls of each denoiser per denoising step (true CFG calls twice), counted on the tiny pipeline."""
    bundle, args = build_with_defaults(family, "tiny", torch.device("cpu"), torch.float32, variant)
    calls = dict.fromkeys((c.name for c in bundle.denoisers), 0)
    hooks = HookSet()
    for component in bundle.denoisers:
        hooks.around_forward(component.module, before=lambda n=component.name: calls.__setitem__(n, calls[n] + 1))
    bundle.generate(args)
    hooks.remove()
    return {name: count / args.steps for name, count in calls.items()}


def rows() -> list[dict]:
    """One row per family variant at full scale in bf16."""
    table = []
    for family in FAMILIES.names():
        fam = FAMILIES.get(family)()
        for variant in fam.variants:
            bundle = fam.build(BuildSpec(variant, "full", torch.bfloat16, META))
            calls = calls_per_step(family, variant)
            unit_bytes = {c.name: [module_bytes(m) for _, m in c.units] for c in bundle.denoisers}
            streamed = sum(sum(sizes) * calls[name] for name, sizes in unit_bytes.items())
            table.append(dict(
                family=family, variant=variant,
                denoiser_b=sum(count_parameters(c.module) for c in bundle.denoisers) / 1e9,
                encoders_b=sum(count_parameters(c.module) for c in bundle.components if c.role == "encoder") / 1e9,
                units=sum(len(s) for s in unit_bytes.values()),
                largest_mib=max(max(s) for s in unit_bytes.values()) / 2**20,
                stream_gib=streamed / 2**30, calls=" + ".join(f"{v:g}" for v in calls.values())))
    return table


def markdown() -> str:
    head = ("| family | variant | denoiser params (B) | text encoders (B) | streamed units | largest unit (MiB) | "
            "denoiser calls per step | streamed GiB per step |\n|---|---|---|---|---|---|---|---|")
    lines = [f"| {r['family']} | {r['variant']} | {r['denoiser_b']:.3f} | {r['encoders_b']:.3f} | {r['units']} | "
             f"{r['largest_mib']:.0f} | {r['calls']} | {r['stream_gib']:.2f} |" for r in rows()]
    return "\n".join([head, *lines])


if __name__ == "__main__":
    print(markdown())
