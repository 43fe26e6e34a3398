"""A synthetic stack of streamable units wrapped as a Bundle: for scheduler tests and engine benchmarks.

Units have chosen sizes, the stack calls them in any order (repeats and skips included), and each call
can run a different order, so every path of the scheduler can be driven without a diffusion pipeline.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from families.base import Bundle, Component, GenerateArgs


class Unit(nn.Module):
    """x + W2 gelu(W1 x): `hidden` sets the unit's bytes."""

    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.up = nn.Linear(width, hidden)
        self.down = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.1 * self.down(torch.nn.functional.gelu(self.up(x)))


class Stack(nn.Module):
    """Calls its units in `orders[call % len(orders)]`."""

    def __init__(self, width: int, hiddens: Sequence[int], orders: Sequence[Sequence[int]]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Unit(width, h) for h in hiddens)
        self.norm = nn.LayerNorm(width)
        self.orders = [list(o) for o in orders]
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        order = self.orders[self.calls % len(self.orders)]
        self.calls += 1
        for index in order:
            x = self.blocks[index](x)
        return self.norm(x)


def stack_bundle(hiddens: Sequence[int], orders: Sequence[Sequence[int]], width: int = 64, tokens: int = 16,
                 device: torch.device = torch.device("cpu"), seed: int = 0, encoder_hidden: int = 0) -> Bundle:
    """A Bundle whose denoiser is a Stack; `generate` runs `steps` calls on a seeded input. With
    `encoder_hidden`, an encoder (one Unit, never split) runs once first."""
    torch.manual_seed(seed)
    stack = Stack(width, hiddens, orders).to(device).eval().requires_grad_(False)
    encoder = Unit(width, encoder_hidden).to(device).eval().requires_grad_(False) if encoder_hidden else None

    def run(args: GenerateArgs) -> torch.Tensor:
        stack.calls = 0
        x = torch.randn(tokens, width, generator=torch.Generator().manual_seed(args.seed)).to(device)
        if encoder is not None:
            x = encoder(x)
        for _ in range(args.steps):
            x = stack(x)
        return x

    units = [(f"blocks.{i}", block) for i, block in enumerate(stack.blocks)]
    components = [Component("stack", stack, "denoiser", ("forward",), units)]
    if encoder is not None:
        components.insert(0, Component("encoder", encoder, "encoder", ("forward",), []))
    return Bundle("stack", "synthetic", "custom", None, components, device, torch.float32, run)
