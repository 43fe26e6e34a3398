"""diffusers' own offloading as baselines: group offloading (block and leaf level), model and sequential CPU offload.

They need CUDA; on a CPU they end as `skipped` rows with the reason.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from families.base import Bundle
from harness.errors import SkipJob
from strategies.base import STRATEGIES, ApplyContext, Handle, Strategy, component_homes, send_home
from strategies.engine.offload import release_cached_memory


def _remove_diffusers_hooks(module: nn.Module) -> None:
    """Take off every hook diffusers' hook registry put on the module tree (group offloading)."""
    for sub in module.modules():
        registry = getattr(sub, "_diffusers_hook", None)
        if registry is not None:
            for name in list(registry.hooks):
                registry.remove_hook(name, recurse=False)


def tied_parameters(module: nn.Module) -> list[tuple[str, str]]:
    """(alias, owner): names under which a parameter seen earlier (as owner) appears again (tied weights)."""
    owners: dict[int, str] = {}
    ties = []
    for name, parameter in module.named_parameters(remove_duplicate=False):
        if id(parameter) in owners:
            ties.append((name, owners[id(parameter)]))
        else:
            owners[id(parameter)] = name
    return ties


def retie(module: nn.Module, ties: list[tuple[str, str]]) -> None:
    """Point every alias at its owner again (accelerate's sequential offload unties T5's and the LLMs' tied
    embeddings, leaving two copies where the model had one)."""
    for alias, owner in ties:
        parent, _, attribute = alias.rpartition(".")
        setattr(module.get_submodule(parent), attribute, module.get_parameter(owner))


class PeerHandle(Handle):
    """diffusers manages the weights; we only take its hooks off and put the weights back home, tied as they were."""

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self.homes = component_homes(bundle)
        self.ties = {c.name: tied_parameters(c.module) for c in bundle.components}

    def stats(self) -> dict[str, Any]:
        return dict(peak_weights_bytes=None, pinned_bytes=None, h2d_bytes=None)

    def reset_stats(self) -> None:
        """diffusers keeps no counters to reset."""

    def remove(self) -> None:
        self.bundle.pipe.remove_all_hooks()
        for component in self.bundle.components:
            _remove_diffusers_hooks(component.module)
        send_home(self.bundle, self.homes)
        for component in self.bundle.components:
            retie(component.module, self.ties[component.name])
        if torch.cuda.is_available():
            release_cached_memory()


class DiffusersPeer(Strategy):
    """A diffusers offloading mode applied to the whole pipeline."""

    knobs = ()
    enable: Callable[[Any, torch.device], None]

    def check_device(self, device: torch.device) -> None:
        if device.type != "cuda":
            raise SkipJob(f"{self.name} needs CUDA: diffusers' offloading moves weights between a GPU and the host")

    def apply(self, bundle: Bundle, ctx: ApplyContext) -> Handle:
        self.check_device(ctx.device)
        handle = PeerHandle(bundle)
        try:
            type(self).enable(bundle.pipe, ctx.device)
        except BaseException:
            handle.remove()
            raise
        return handle


@STRATEGIES.register("diffusers_group_block")
class GroupBlock(DiffusersPeer):
    """Group offloading, block level, one block per group, on a stream with record_stream."""

    name = "diffusers_group_block"

    @staticmethod
    def enable(pipe: Any, device: torch.device) -> None:
        pipe.enable_group_offload(onload_device=device, offload_type="block_level", num_blocks_per_group=1,
                                  use_stream=True, record_stream=True)


@STRATEGIES.register("diffusers_group_leaf")
class GroupLeaf(DiffusersPeer):
    """Group offloading, leaf level, on a stream."""

    name = "diffusers_group_leaf"

    @staticmethod
    def enable(pipe: Any, device: torch.device) -> None:
        pipe.enable_group_offload(onload_device=device, offload_type="leaf_level", use_stream=True)


@STRATEGIES.register("diffusers_model_offload")
class ModelOffload(DiffusersPeer):
    """`enable_model_cpu_offload`: whole models in and out (diffusers' drop and reload)."""

    name = "diffusers_model_offload"

    @staticmethod
    def enable(pipe: Any, device: torch.device) -> None:
        pipe.enable_model_cpu_offload(device=device)


@STRATEGIES.register("diffusers_sequential")
class Sequential(DiffusersPeer):
    """`enable_sequential_cpu_offload`: leaf modules streamed synchronously through accelerate hooks."""

    name = "diffusers_sequential"

    @staticmethod
    def enable(pipe: Any, device: torch.device) -> None:
        pipe.enable_sequential_cpu_offload(device=device)
