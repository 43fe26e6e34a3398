"""LTX-Video and Wuerstchen: full-size counts on meta, tiny and small generation, units, sizes, saved folders."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from families.base import FAMILIES, SCALES, Bundle, BuildSpec, GenerateArgs
from families.synthetic import count_parameters
from families.units import module_bytes
from harness.errors import HarnessError

CPU = torch.device("cpu")
# families.md; it counts bigG with its projection, the prior's plain CLIPTextModel has 0.693 B (within 1%)
T5_XXL, CLIP_BIG_G, CLIP_H = 4.762e9, 0.695e9, 0.353e9


def build(name: str, variant: str, scale: str, weights: Path | None = None) -> Bundle:
    return FAMILIES.get(name)().build(BuildSpec(variant, scale, torch.float32, CPU, weights))


def default_args(name: str, variant: str, scale: str, **override: int) -> GenerateArgs:
    d = FAMILIES.get(name)().defaults(variant, scale)
    return GenerateArgs(**{**dict(steps=d.steps, height=d.height, width=d.width, frames=d.frames, seed=0), **override})


def unit_fraction(bundle: Bundle) -> float:
    """The smallest share of a denoiser's bytes that its streamed units hold."""
    return min(sum(module_bytes(m) for _, m in c.units) / module_bytes(c.module) for c in bundle.denoisers)


@pytest.mark.parametrize("name, variant, expected, units", [
    ("ltx_video", "2b", {"text_encoder": T5_XXL, "transformer": 1.923e9}, {"transformer": 28}),
    ("ltx_video", "13b", {"text_encoder": T5_XXL, "transformer": 13.043e9}, {"transformer": 48}),
    ("wuerstchen", "v2", {"prior_text_encoder": CLIP_BIG_G, "prior_prior": 0.994e9, "text_encoder": CLIP_H,
                          "decoder": 1.055e9}, {"prior_prior": 96, "decoder": 154}),
])
def test_full_scale_parameter_counts_on_meta(name: str, variant: str, expected: dict[str, float],
                                             units: dict[str, int]) -> None:
    bundle = FAMILIES.get(name)().build(BuildSpec(variant, "full", torch.bfloat16, torch.device("meta")))
    for component, count in expected.items():
        assert count_parameters(bundle.component(component).module) == pytest.approx(count, rel=0.01), component
    assert {c.name: len(c.units) for c in bundle.denoisers} == units
    assert all(p.dtype == torch.bfloat16 and p.is_meta for c in bundle.denoisers for p in c.module.parameters())
    assert unit_fraction(bundle) > 0.97
    assert bundle.components[-1].role == "decoder" and bundle.components[-1].entry_points == ("decode",)


@pytest.mark.parametrize("name, variant, shape", [
    ("ltx_video", "2b", (1, 9, 3, 32, 32)),
    ("wuerstchen", "v2", (1, 3, 128, 128)),
])
def test_tiny_generate_is_finite_repeatable_and_runs_every_unit(name: str, variant: str,
                                                                shape: tuple[int, ...]) -> None:
    bundle = build(name, variant, "tiny")
    args = default_args(name, variant, "tiny")
    called: set[str] = set()
    for component in bundle.denoisers:
        for unit_name, unit in component.units:
            unit.register_forward_hook(lambda *_, key=f"{component.name}.{unit_name}": called.add(key))
    first = bundle.generate(args)
    assert first.shape == shape and torch.isfinite(first).all()
    assert called == {f"{c.name}.{u}" for c in bundle.denoisers for u, _ in c.units}
    assert torch.equal(bundle.generate(args), first)
    previous = first
    for component in bundle.denoisers:  # every denoiser's blocks reach the output
        with torch.no_grad():
            for p in component.units[len(component.units) // 2][1].parameters():
                p.mul_(1.5)
        changed = bundle.generate(args)
        assert not torch.equal(changed, previous), component.name
        previous = changed


@pytest.mark.parametrize("name, variant", [("ltx_video", "2b"), ("ltx_video", "13b"), ("wuerstchen", "v2")])
def test_small_generate_is_finite_and_units_hold_the_denoisers(name: str, variant: str) -> None:
    bundle = build(name, variant, "small")
    denoiser_bytes = sum(module_bytes(c.module) for c in bundle.denoisers)
    assert denoiser_bytes / sum(module_bytes(c.module) for c in bundle.components) > 0.95  # measured 0.97
    assert unit_fraction(bundle) > 0.95  # measured 0.96 (LTX) to 0.99 (Wuerstchen)
    out = bundle.generate(default_args(name, variant, "small", steps=2 if name == "ltx_video" else 1))
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name, variant", [("ltx_video", "2b"), ("wuerstchen", "v2")])
def test_saved_tiny_pipeline_loads_through_weights(tmp_path: Path, name: str, variant: str) -> None:
    bundle = build(name, variant, "tiny")
    bundle.pipe.save_pretrained(tmp_path, safe_serialization=True)
    loaded = build(name, variant, "tiny", weights=tmp_path)
    args = default_args(name, variant, "tiny")
    # safetensors tensors are not 64-byte aligned, so CPU kernels may round differently: close, not equal
    torch.testing.assert_close(loaded.generate(args), bundle.generate(args), rtol=1e-4, atol=1e-4)


def test_check_size_rejects_bad_frames_and_sizes() -> None:
    ltx, wuerstchen = FAMILIES.get("ltx_video")(), FAMILIES.get("wuerstchen")()
    with pytest.raises(HarnessError, match="run.frames=10"):
        ltx.check_size(32, 32, 10)
    with pytest.raises(HarnessError, match="run.steps=1"):
        ltx.call_kwargs(default_args("ltx_video", "2b", "tiny", steps=1), BuildSpec("2b", "tiny", torch.float32, CPU))
    for family, frames in ((ltx, 9), (wuerstchen, None)):
        with pytest.raises(HarnessError, match="run.height=33"):
            family.check_size(33, 128, frames)
    with pytest.raises(HarnessError, match="run.width=192"):
        wuerstchen.check_size(128, 192, None)
    for family in (ltx, wuerstchen):
        for variant in family.variants:
            for scale in SCALES:
                d = family.defaults(variant, scale)
                family.check_size(d.height, d.width, d.frames)
