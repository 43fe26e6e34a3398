"""A family built on one diffusers pipeline: the common build, call and output logic."""
from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

import diffusers
import torch
import transformers
from torch import nn

from families.base import Bundle, BuildSpec, Component, Family, GenerateArgs, Role
from families.checkpoint import load_pipeline
from families.synthetic import ModuleBuilder
from families.units import DEFAULT_UNIT_BYTES, split_by_size

diffusers.utils.logging.set_verbosity_error()
transformers.utils.logging.set_verbosity_error()


class DiffusersFamily(Family):
    """Subclasses give the pipeline class, the stages, synthetic components and call arguments."""

    pipeline_class: ClassVar[Any]
    stages: ClassVar[tuple[tuple[str, Role, tuple[str, ...]], ...]]

    @abstractmethod
    def synthetic_components(self, build: ModuleBuilder, variant: str, scale: str) -> dict[str, Any]:
        """Every pipeline component with random weights (modules through `build`)."""

    @abstractmethod
    def call_kwargs(self, args: GenerateArgs, spec: BuildSpec) -> dict[str, Any]:
        """Keyword arguments of the pipeline call, besides the generator."""

    def units(self, name: str, module: nn.Module, variant: str) -> list[tuple[str, nn.Module]]:
        """Streamable units of a denoiser; by default the coarsest submodules under 1 GiB."""
        return split_by_size(module, DEFAULT_UNIT_BYTES)

    def output(self, result: Any) -> torch.Tensor:
        return torch.as_tensor(result.images)

    def make_pipeline(self, spec: BuildSpec) -> Any:
        if spec.weights is not None:
            return load_pipeline(self.pipeline_class, spec.weights, self.name, spec.dtype, spec.weights_device)
        components = self.synthetic_components(ModuleBuilder(spec), spec.variant, spec.scale)
        return self.pipeline_class(**components)

    def build(self, spec: BuildSpec) -> Bundle:
        self.check_variant(spec.variant)
        self.check_scale(spec.scale)
        pipe = self.make_pipeline(spec)
        pipe.set_progress_bar_config(disable=True)
        components = []
        for name, role, entry_points in self.stages:
            module = getattr(pipe, name)
            units = self.units(name, module, spec.variant) if role == "denoiser" else []
            components.append(Component(name, module, role, entry_points, units))

        def run(args: GenerateArgs) -> torch.Tensor:
            generator = torch.Generator("cpu").manual_seed(args.seed)
            return self.output(pipe(generator=generator, **self.call_kwargs(args, spec)))

        return Bundle(self.name, spec.variant, spec.scale, pipe, components, spec.device, spec.dtype, run)
