"""Random fills of large host tensors split over threads: reproducible, same distributions, only large ones."""
from __future__ import annotations

import torch
from torch import nn

from families.parallel_fill import CHUNK, ParallelFill


def filled(seed: int, threads: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    with torch.no_grad(), ParallelFill(seed, threads) as mode:
        weight = torch.empty(2 * CHUNK + 5)
        nn.init.uniform_(weight, -0.5, 0.5)
        noise = torch.empty(3 * CHUNK).normal_(0.0, 2.0)
        torch.empty(16).uniform_()  # small: the default generator
    return weight, noise, mode.calls


def test_values_depend_on_the_seed_not_on_the_threads() -> None:
    one = filled(7, threads=1)
    two = filled(7, threads=2)
    assert torch.equal(one[0], two[0]) and torch.equal(one[1], two[1])
    assert one[2] == two[2] == 2, "only the two large fills are split"
    assert not torch.equal(filled(8, threads=2)[0], one[0])


def test_the_distributions_are_those_asked_for() -> None:
    weight, noise, _ = filled(0, threads=2)
    assert -0.5 <= float(weight.min()) and float(weight.max()) < 0.5
    assert abs(float(weight.mean())) < 0.01
    assert abs(float(noise.mean())) < 0.01 and abs(float(noise.std()) - 2.0) < 0.01
    chunks = noise.view(3, CHUNK)
    assert not torch.equal(chunks[0], chunks[1]), "each chunk has a generator of its own"
