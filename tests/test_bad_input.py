"""Bad input through the CLI, as a new user would type it: one line naming the bad value, non-zero exit."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_helpers import harness

CASES = {
    "unknown family": (["family=fluxx"], "unknown family 'fluxx' (did you mean 'flux'?)"),
    "unknown strategy": (["strategy=stream"], "unknown strategy 'stream'"),
    "unknown variant": (["family=flux", "family.variant=pro"], "unknown variant of flux 'pro'"),
    "unknown scale": (["family.scale=huge"], "unknown scale 'huge'"),
    "negative depth": (["strategy.prefetch_depth=-1"], "strategy.prefetch_depth=-1 is not valid"),
    "fractional depth": (["strategy.prefetch_depth=1.5"], "strategy.prefetch_depth=1.5 is not valid"),
    "too many resident units": (["strategy.resident_units=99"], "strategy.resident_units=99 is more than the"),
    "resident units and bytes": (["strategy.resident_units=2", "strategy.resident_gb=1"],
                                 "strategy.resident_units=2 and strategy.resident_gb=1 are both set: use one of them"),
    "bad placement": (["strategy.placement=random"], "strategy.placement='random' is not valid"),
    "height": (["run.height=100"], "run.height=100 is not valid for sd15: use a positive multiple of 8"),
    "width": (["family=flux", "run.width=24"], "run.width=24 is not valid for flux: use a positive multiple of 16"),
    "frames": (["family=ltx_video", "run.frames=10"], "run.frames=10 is not valid for ltx_video"),
    "frames on an image model": (["run.frames=9"], "run.frames=9 is not valid for sd15"),
    "zero steps": (["run.steps=0"], "run.steps=0 is not valid"),
    "negative repeats": (["run.repeats=-2"], "run.repeats=-2 is not valid"),
    "zero repeats": (["run.repeats=0"], "run.repeats=0 is not valid"),
    "missing weights": (["family.weights=/nowhere/model"], "family.weights=/nowhere/model does not exist"),
    "bad device": (["run.device=tpu"], "run.device='tpu' is not valid"),
    "bad dtype": (["run.dtype=int8"], "run.dtype='int8' is not valid"),
    "bad build place": (["run.build_on=disk"], "run.build_on='disk' is not valid: use auto, device, host"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_value_is_one_line(name: str, tmp_path: Path) -> None:
    overrides, expected = CASES[name]
    done = harness(*overrides, "run.repeats=1" if "repeats" not in name else "run.warmup=0", "run.progress=false",
                   f"hydra.run.dir={tmp_path}/run", f"output_root={tmp_path}")
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert expected in lines[0]
    assert "Traceback" not in done.stdout + done.stderr


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from tests.conftest import tiny

    root = tmp_path_factory.mktemp("weights")
    tiny("flux")[0].pipe.save_pretrained(root / "flux", safe_serialization=True)
    weights = next((root / "flux").glob("transformer/*.safetensors"))
    corrupt = root / "corrupt"
    import shutil

    shutil.copytree(root / "flux", corrupt)
    target = next(corrupt.glob("transformer/*.safetensors"))
    target.write_bytes(weights.read_bytes()[:100])
    (root / "plain").mkdir()
    return {"flux": root / "flux", "corrupt": corrupt, "plain": root / "plain"}


@pytest.mark.parametrize("case,family,expected", [
    ("plain", "flux", "is not a diffusers folder (no model_index.json)"),
    ("corrupt", "flux", "is truncated or corrupt"),
    ("flux", "sd15", "holds a FluxPipeline checkpoint, not sd15"),
])
def test_bad_checkpoint_is_one_line(checkpoints: dict[str, Path], case: str, family: str, expected: str,
                                    tmp_path: Path) -> None:
    done = harness(f"family={family}", f"family.weights={checkpoints[case]}", "run.repeats=1",
                   f"hydra.run.dir={tmp_path}/run", f"output_root={tmp_path}")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], done.stderr


def test_budget_below_the_resident_parts_is_an_oom_line(tmp_path: Path) -> None:
    done = harness("strategy=block_stream", "run.vram_budget_gb=0.00001", "run.repeats=1", "run.progress=false",
                   f"hydra.run.dir={tmp_path}/run", f"output_root={tmp_path}")
    assert done.returncode == 3, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("oom: run.vram_budget_gb=1e-05 is too small: BudgetExceeded")
