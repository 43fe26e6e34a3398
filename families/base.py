"""What a family hands to the harness: a Bundle (pipeline, components in stage order, streamable units)."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Literal

import torch
from torch import nn

from harness.errors import HarnessError
from harness.registry import Registry, unknown_name_message

SCALES = ("tiny", "small", "full")
Role = Literal["encoder", "denoiser", "decoder"]

FAMILIES: Registry[type["Family"]] = Registry("family", "families")


@dataclass(frozen=True)
class BuildSpec:
    """Everything that decides the weights: which model, at which scale, in which dtype, for which compute device,
    built where (`build_device`: None builds on the compute device, the host's CPU keeps a model larger than it)."""

    variant: str
    scale: str
    dtype: torch.dtype
    device: torch.device
    weights: Path | None = None
    seed: int = 0
    build_device: torch.device | None = None

    @property
    def weights_device(self) -> torch.device:
        """Where the built weights live until a strategy places them."""
        return self.build_device or self.device


@dataclass(frozen=True)
class GenerateArgs:
    """Everything that decides one generation besides the weights."""

    steps: int
    height: int
    width: int
    frames: int | None
    seed: int
    prompt: str = "a photo of an astronaut riding a horse on the moon"


@dataclass
class Component:
    """One model of the pipeline and the methods through which the pipeline calls it."""

    name: str
    module: nn.Module
    role: Role
    entry_points: tuple[str, ...] = ("forward",)
    units: list[tuple[str, nn.Module]] = field(default_factory=list)

    @property
    def streamable(self) -> bool:
        return bool(self.units)


@dataclass
class Bundle:
    """A built pipeline plus what strategies need to know about it."""

    family: str
    variant: str
    scale: str
    pipe: Any
    components: list[Component]
    device: torch.device
    dtype: torch.dtype
    run: Callable[[GenerateArgs], torch.Tensor]

    def generate(self, args: GenerateArgs) -> torch.Tensor:
        """Run the pipeline once and return the decoded output as a float32 CPU tensor."""
        with torch.no_grad():
            out = self.run(args)
        return out.detach().float().cpu()

    def component(self, name: str) -> Component:
        return next(c for c in self.components if c.name == name)

    @property
    def denoisers(self) -> list[Component]:
        return [c for c in self.components if c.role == "denoiser"]


@dataclass(frozen=True)
class RunDefaults:
    """Default generation settings of a family at one scale."""

    steps: int
    height: int
    width: int
    frames: int | None = None

    def args(self, seed: int = 0) -> GenerateArgs:
        """These defaults as the arguments of one generation."""
        return GenerateArgs(self.steps, self.height, self.width, self.frames, seed)


class Family(ABC):
    """A diffusion family: builds bundles at three scales or from a local checkpoint."""

    name: ClassVar[str]
    variants: ClassVar[tuple[str, ...]]
    video: ClassVar[bool] = False
    size_multiple: ClassVar[int] = 8
    frame_rule: ClassVar[tuple[int, int] | None] = None

    def check_variant(self, variant: str) -> None:
        if variant not in self.variants:
            raise HarnessError(unknown_name_message(f"variant of {self.name}", variant, list(self.variants)))

    @staticmethod
    def check_scale(scale: str) -> None:
        if scale not in SCALES:
            raise HarnessError(unknown_name_message("scale", scale, list(SCALES)))

    def default_variant(self) -> str:
        return self.variants[0]

    @abstractmethod
    def defaults(self, variant: str, scale: str) -> RunDefaults:
        """Steps, height, width (and frames) that suit this scale."""

    @abstractmethod
    def build(self, spec: BuildSpec) -> Bundle:
        """Build the pipeline (synthetic weights, or `spec.weights` from a local folder)."""

    def check_size(self, height: int, width: int, frames: int | None) -> None:
        """Reject sizes the model cannot take, naming the bad value and the rule."""
        m = self.size_multiple
        for label, value in (("height", height), ("width", width)):
            if value <= 0 or value % m:
                raise HarnessError(f"run.{label}={value} is not valid for {self.name}: use a positive multiple of {m}")
        if self.frame_rule is None:
            if frames not in (None, 1):
                raise HarnessError(f"run.frames={frames} is not valid for {self.name}: it makes images; "
                                   "leave run.frames unset")
        else:
            step, offset = self.frame_rule
            if frames is None or frames <= 0 or (frames - offset) % step:
                raise HarnessError(f"run.frames={frames} is not valid for {self.name}: use {step}*k+{offset} "
                                   f"frames (for example {step + offset})")


def build_with_defaults(name: str, scale: str, device: torch.device, dtype: torch.dtype,
                        variant: str | None = None, build_device: torch.device | None = None
                        ) -> tuple[Bundle, GenerateArgs]:
    """A family's bundle (default variant unless given; built on `build_device` if given) and its default
    generation arguments at that scale."""
    family = FAMILIES.get(name)()
    variant = variant or family.default_variant()
    spec = BuildSpec(variant, scale, dtype, device, build_device=build_device)
    return family.build(spec), family.defaults(variant, scale).args()
