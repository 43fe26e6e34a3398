"""Registries and configs agree, and unknown names get a helpful message."""
from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from families.base import FAMILIES
from harness.errors import HarnessError
from harness.registry import Registry
from strategies.base import STRATEGIES

CONF = Path(__file__).resolve().parent.parent / "conf"


@pytest.mark.parametrize("registry,group", [(FAMILIES, "family"), (STRATEGIES, "strategy")])
def test_every_registered_name_has_a_config_and_composes(registry: Registry, group: str) -> None:
    files = sorted(p.stem for p in (CONF / group).glob("*.yaml"))
    assert files == registry.names()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        for name in files:
            cfg = compose("config", overrides=[f"{group}={name}"])
            assert cfg[group].name == name


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(HarnessError, match=r"unknown family 'fluxx' \(did you mean 'flux'\?\); known: .*sd15"):
        FAMILIES.get("fluxx")
