"""FLUX.2, Qwen-Image and Z-Image: released sizes on meta, tiny runs, small-scale streaming share."""
from __future__ import annotations

import dataclasses
from collections import Counter

import pytest
import torch

from families.base import FAMILIES, BuildSpec, Bundle
from families.synthetic import count_parameters
from families.units import module_bytes
from harness.errors import HarnessError
from tests.conftest import build

VARIANTS = [("flux2", "dev"), ("flux2", "klein-4b"), ("flux2", "klein-9b"), ("qwen_image", "base"),
            ("z_image", "turbo")]
# billions of parameters (denoiser, text encoder) and streamed blocks of the released models
FULL = {"dev": (32.223, 24.011, 56), "klein-4b": (3.876, 4.022, 25), "klein-9b": (9.079, 8.191, 32),
        "base": (20.430, 8.292, 60), "turbo": (6.155, 4.022, 34)}
CALLS_PER_STEP = {"flux2": 1, "qwen_image": 2, "z_image": 1}  # Qwen-Image runs true CFG


def unit_share(bundle: Bundle) -> float:
    denoiser = bundle.denoisers[0]
    return sum(module_bytes(unit) for _, unit in denoiser.units) / module_bytes(denoiser.module)


@pytest.mark.parametrize(("name", "variant"), VARIANTS)
def test_full_scale_parameter_counts(name: str, variant: str) -> None:
    spec = BuildSpec(variant, "full", torch.bfloat16, torch.device("meta"))
    bundle = FAMILIES.get(name)().build(spec)
    denoiser_b, encoder_b, blocks = FULL[variant]
    assert count_parameters(bundle.denoisers[0].module) / 1e9 == pytest.approx(denoiser_b, rel=0.01)
    assert count_parameters(bundle.component("text_encoder").module) / 1e9 == pytest.approx(encoder_b, rel=0.01)
    assert len(bundle.denoisers[0].units) == blocks
    assert unit_share(bundle) > 0.94  # lowest: klein-4b, 0.950


@pytest.mark.parametrize(("name", "variant"), VARIANTS)
def test_tiny_generate_is_finite_deterministic_and_calls_every_unit(name: str, variant: str) -> None:
    bundle, args = build(name, "tiny", variant)
    denoiser = bundle.denoisers[0]
    calls: Counter[str] = Counter()
    for unit_name, unit in [("denoiser", denoiser.module), *denoiser.units]:
        unit.register_forward_hook(lambda *_, key=unit_name: calls.update([key]))
    first = bundle.generate(args)
    assert first.shape == (1, 3, args.height, args.width)
    assert torch.isfinite(first).all()
    assert calls == Counter({key: CALLS_PER_STEP[name] * args.steps for key in ["denoiser", *dict(denoiser.units)]})
    assert torch.equal(first, bundle.generate(args))


def test_qwen_image_rejects_one_step() -> None:
    bundle, args = build("qwen_image", "tiny", "base")
    with pytest.raises(HarnessError, match="run.steps=1"):
        bundle.generate(dataclasses.replace(args, steps=1))


@pytest.mark.parametrize(("name", "variant", "share"),
                         [("flux2", "klein-4b", 0.92), ("qwen_image", "base", 0.98), ("z_image", "turbo", 0.99)])
def test_small_generate_is_finite_and_units_hold_the_weights(name: str, variant: str, share: float) -> None:
    """Measured unit shares: klein-4b 0.924, Qwen-Image 0.983, Z-Image 0.994; denoisers hold over 0.96 of the bytes."""
    bundle, args = build(name, "small", variant)
    out = bundle.generate(args)
    assert out.shape == (1, 3, args.height, args.width)
    assert torch.isfinite(out).all()
    assert unit_share(bundle) > share
    assert module_bytes(bundle.denoisers[0].module) > 0.95 * sum(module_bytes(c.module) for c in bundle.components)
