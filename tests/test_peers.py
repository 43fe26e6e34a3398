"""diffusers' offloading as peers: registered, and skipped with a reason on a CPU."""
from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from harness.run import run_job
from strategies.base import STRATEGIES
from tests.test_registry import CONF

PEERS = ["diffusers_group_block", "diffusers_group_leaf", "diffusers_model_offload", "diffusers_sequential"]


@pytest.mark.parametrize("peer", PEERS)
def test_peer_is_a_skipped_row_on_cpu(peer: str, tmp_path: Path) -> None:
    assert peer in STRATEGIES.names()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[f"strategy={peer}", "run.device=cpu", f"output_root={tmp_path}"])
    row = run_job(cfg, tmp_path)
    assert row["status"] == "skipped"
    assert row["error"] == f"{peer} needs CUDA: diffusers' offloading moves weights between a GPU and the host"
    assert (tmp_path / "result.json").is_file()
