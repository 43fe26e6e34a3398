"""Where the model is built (`run.build_on`) and which run is the reference when the resident one does not fit."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from hydra import compose, initialize_config_dir

from families.base import FAMILIES, BuildSpec
from families.units import module_bytes
from harness import host_fit
from harness.run import build_bundle, run_job
from harness.settings import JobSettings
from harness.summary import one_line
from tests.conftest import tiny
from tests.test_registry import CONF


def job(tmp_path: Path, name: str, *overrides: str) -> dict[str, Any]:
    """One harness job in this process, its folder under `tmp_path` (the reference cache shared by all)."""
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=["strategy=block_prefetch", "run.repeats=1", "run.progress=false",
                                           f"output_root={tmp_path}", *overrides])
    folder = tmp_path / name
    folder.mkdir()
    return run_job(cfg, folder)


LEAN = ("strategy=block_stream", "strategy.stream_encoders=true")


@pytest.fixture(scope="module")
def squeezed_budget_gb(tmp_path_factory: pytest.TempPathFactory) -> float:
    """A budget between what block_stream with streamed encoders holds (the fallback reference; on tiny models
    block_prefetch's slots hold more than the whole model) and the whole tiny sd15 model."""
    lean = job(tmp_path_factory.mktemp("lean"), "lean", *LEAN)["peak_weights_bytes"]
    whole = sum(module_bytes(c.module) for c in tiny("sd15")[0].components)
    assert lean < whole
    return (lean + whole) / 2 / 1e9


def test_a_host_build_runs_and_says_so(tmp_path: Path) -> None:
    row = job(tmp_path, "host", "run.build_on=host")
    assert row["status"] == "ok", row["error"]
    assert (row["build_on"], row["reference_strategy"], row["parity_exact"]) == ("host", "none", True)
    assert row["build_s"] > 0 and one_line(row).endswith("parity exact")
    assert job(tmp_path, "auto")["build_on"] == "device", "auto builds on the device when the model fits"


def test_the_reference_falls_back_to_the_leanest_lossless_run_where_the_resident_one_does_not_fit(
        tmp_path: Path, squeezed_budget_gb: float) -> None:
    """On a host build the budget covers the reference too: a card that small cannot run the model resident."""
    squeezed = f"run.vram_budget_gb={squeezed_budget_gb}"
    first = job(tmp_path, "squeezed", "run.build_on=host", squeezed, *LEAN)
    assert first["status"] == "ok", first["error"]
    assert (first["reference_strategy"], first["parity_exact"]) == ("block_stream+encoders", True)
    assert one_line(first).endswith("parity exact (vs block_stream+encoders)")
    assert job(tmp_path, "none-squeezed", "run.build_on=host", squeezed, "strategy=none")["status"] == "oom"
    device_built = job(tmp_path, "device", "run.build_on=device", squeezed, *LEAN)
    assert device_built["reference_strategy"] == "none", "a device build holds the model before any budget"
    roomy = job(tmp_path, "roomy", "run.build_on=host")
    assert roomy["reference_strategy"] == "none", "the resident reference is computed where it fits"
    again = job(tmp_path, "squeezed-again", "run.build_on=host", squeezed, *LEAN)
    assert (again["reference_strategy"], again["parity_exact"]) == ("none", True), "a stored resident one wins"


def cuda_build(fits: bool, budget_gb: float | None) -> tuple[str, list[torch.device], BuildSpec]:
    """Where `auto` builds a CUDA job (faked: nothing is built), the devices it tried, and the spec it built."""
    built = []

    def build(spec: BuildSpec) -> SimpleNamespace:
        if spec.weights_device.type == "meta":  # sized before a host build
            return SimpleNamespace(components=[])
        built.append(spec.weights_device)
        if spec.build_device is None and not fits:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return SimpleNamespace(spec=spec)

    spec = BuildSpec("dev", "full", torch.bfloat16, torch.device("cuda"))
    settings = JobSettings(SimpleNamespace(build=build, name="fake"), spec, None, None, {}, 0, 1, budget_gb, build_on="auto")
    bundle, place = build_bundle(settings)
    return place, built, bundle.spec


def test_auto_builds_on_the_host_when_the_device_runs_out_of_memory() -> None:
    place, built, spec = cuda_build(fits=False, budget_gb=None)
    assert place == "host" and built == [torch.device("cuda"), torch.device("cpu")]
    assert spec.device == torch.device("cuda"), "the model still computes on the device"
    assert cuda_build(fits=True, budget_gb=None)[:2] == ("device", [torch.device("cuda")])


def test_auto_builds_on_the_host_under_a_vram_budget() -> None:
    """A 6 GB cap on an H100 found 7.8 GiB reserved by the allocator: a device build leaves memory behind that the
    card being emulated would never hold."""
    assert cuda_build(fits=True, budget_gb=6.0)[:2] == ("host", [torch.device("cpu")])


def test_weights_are_sized_exactly_on_the_meta_device() -> None:
    bundle, _, _ = tiny("flux")
    spec = BuildSpec("dev", "tiny", torch.float32, torch.device("cpu"))
    assert host_fit.weight_bytes(FAMILIES.get("flux")(), spec) == sum(module_bytes(c.module) for c in bundle.components)


@pytest.mark.parametrize("build_on", ["host", "device"])  # a CPU device is host memory too
def test_a_model_larger_than_the_host_ends_as_an_oom_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         build_on: str) -> None:
    """The kernel's OOM killer would end the process, and a sweep with it: the job is refused before building."""
    monkeypatch.setattr(host_fit, "available_host_bytes", lambda: host_fit.PROCESS_BYTES)
    row = job(tmp_path, build_on, f"run.build_on={build_on}")
    assert row["status"] == "oom"
    assert row["error"].startswith("sd15 base at scale tiny in float32 needs 0.0 GiB of host memory"), row["error"]
    assert "1.0 GiB is available" in row["error"]
