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


def test_a_peer_leaves_tied_weights_tied() -> None:
    """On an H100 and an H200, diffusers_sequential left T5's `encoder.embed_tokens` (and FLUX.2's `lm_head`) a copy
    of the embedding it was tied to, a second tensor where the model had one. Removing the peer ties them again."""
    from torch import nn

    from strategies.peers import PeerHandle
    from tests.conftest import build

    bundle, _ = build("flux")
    t5 = bundle.component("text_encoder_2").module
    assert t5.encoder.embed_tokens.weight is t5.shared.weight
    handle = PeerHandle(bundle)
    t5.encoder.embed_tokens.weight = nn.Parameter(t5.shared.weight.detach().clone())  # as accelerate leaves it
    handle.remove()
    assert t5.encoder.embed_tokens.weight is t5.shared.weight
