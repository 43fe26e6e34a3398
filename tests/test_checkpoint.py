"""Loading a real checkpoint from a local diffusers folder (safetensors only)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from families.base import FAMILIES, BuildSpec
from families.checkpoint import checkpoint_bytes
from harness import host_fit
from harness.errors import HarnessError
from tests.conftest import CPU, run_with, tiny


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folders = {}
    for family in ("sd15", "flux"):
        bundle, _, _ = tiny(family)
        folder = tmp_path_factory.mktemp(family)
        bundle.pipe.save_pretrained(folder, safe_serialization=True)
        folders[family] = folder
    return folders


def test_loaded_checkpoint_gives_the_in_memory_output(saved: dict[str, Path], core_family: str) -> None:
    bundle, args, reference = tiny(core_family)
    fam = FAMILIES.get(core_family)()
    loaded = fam.build(BuildSpec(bundle.variant, "tiny", torch.float32, CPU, weights=saved[core_family]))
    assert not list(saved[core_family].glob("**/*.bin")), "only safetensors are written and read"
    assert torch.equal(loaded.generate(args), reference)
    output, _ = run_with(loaded, args, "block_prefetch", {"prefetch_depth": 1})
    assert torch.equal(output, reference)


def test_checkpoint_of_another_family_is_refused(saved: dict[str, Path]) -> None:
    with pytest.raises(HarnessError, match="StableDiffusionPipeline checkpoint, not flux"):
        FAMILIES.get("flux")().build(BuildSpec("dev", "tiny", torch.float32, CPU, weights=saved["sd15"]))


def test_truncated_safetensors_is_named(saved: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(saved["sd15"], broken)
    weights = next(broken.glob("unet/*.safetensors"))
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(HarnessError, match="truncated or corrupt"):
        FAMILIES.get("sd15")().build(BuildSpec("base", "tiny", torch.float32, CPU, weights=broken))


@pytest.mark.parametrize("make", ["missing", "not_diffusers"])
def test_bad_weights_path(tmp_path: Path, make: str) -> None:
    path = tmp_path / "nothing" if make == "missing" else tmp_path
    with pytest.raises(HarnessError, match="does not exist|not a diffusers folder"):
        FAMILIES.get("sd15")().build(BuildSpec("base", "tiny", torch.float32, CPU, weights=path))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_a_checkpoint_is_sized_from_its_headers(saved: dict[str, Path], core_family: str, dtype: torch.dtype) -> None:
    """Exactly what loading holds, less buffers a module makes itself (CLIP's position ids are not stored)."""
    bundle, _, _ = tiny(core_family)
    stored = {t.data_ptr(): t for c in bundle.components for t in c.module.state_dict().values()}
    loaded = sum(t.numel() * (dtype.itemsize if t.is_floating_point() else t.element_size()) for t in stored.values())
    assert checkpoint_bytes(saved[core_family], dtype) == loaded


def test_a_checkpoint_larger_than_the_host_is_refused_before_loading(saved: dict[str, Path],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host_fit, "available_host_bytes", lambda: host_fit.PROCESS_BYTES)
    with pytest.raises(host_fit.HostMemoryShort, match=f"family.weights={saved['flux']} in float32 needs 0.0 GiB"):
        FAMILIES.get("flux")().build(BuildSpec("dev", "tiny", torch.float32, CPU, weights=saved["flux"]))
