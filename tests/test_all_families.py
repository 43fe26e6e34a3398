"""Every family: streaming at small scale, the all-families sweep, and the README's generated family table."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from families.base import FAMILIES
from harness.family_table import markdown
from tests.cli_helpers import REPO, harness, rows
from tests.conftest import build, run_with

# block_stream's peak weight bytes over resident's at small scale: the value measured on 2 CPU cores in the
# comment, the bound a little above it. The peak is the larger of the biggest text encoder alone and one slot
# (the largest unit) plus the denoiser's remainder. SD 1.5 streams whole UNet blocks, and its largest up block
# holds about 30% of the UNet; Wuerstchen's 250 small units make its slot tiny.
SMALL_PEAK_FRACTION = {
    "sd15": 0.36,  # 0.312
    "sdxl": 0.15,  # 0.122
    "sd3": 0.16,  # 0.128
    "flux": 0.18,  # 0.150
    "flux2": 0.17,  # 0.136
    "qwen_image": 0.21,  # 0.179
    "z_image": 0.13,  # 0.105
    "ltx_video": 0.13,  # 0.105
    "wuerstchen": 0.05,  # 0.037
}


@pytest.mark.parametrize("family", FAMILIES.names())
def test_streaming_lowers_peak_weights_at_small_scale(family: str) -> None:
    bundle, args = build(family, "small")
    args = dataclasses.replace(args, steps=2)
    _, resident = run_with(bundle, args, "none")
    _, streamed = run_with(bundle, args, "block_stream")
    fraction = streamed["peak_weights_bytes"] / resident["peak_weights_bytes"]
    assert fraction < SMALL_PEAK_FRACTION[family], fraction


def test_sweep_over_every_family(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    done = harness("-m", f"family={','.join(FAMILIES.names())}", "strategy=none,block_prefetch", "run.repeats=1",
                   "run.warmup=0", "run.progress=false", f"hydra.sweep.dir={sweep}", f"output_root={tmp_path}")
    assert done.returncode == 0, done.stderr
    found = rows(sweep)
    assert sorted((r["family"], r["strategy"]) for r in found) == sorted(
        (f, s) for f in FAMILIES.names() for s in ("none", "block_prefetch"))
    assert all(r["status"] == "ok" and r["parity_exact"] for r in found), [r["error"] for r in found]


def test_readme_family_table_is_generated() -> None:
    readme = (REPO / "README.md").read_text()
    table = re.search(r"<!-- family-table:start -->\n(.*?)\n<!-- family-table:end -->", readme, re.S).group(1)
    assert table == markdown()
