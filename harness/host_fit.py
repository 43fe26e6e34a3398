"""Whether a model's weights fit in host memory, checked before any weight is made or loaded.

Weights that do not fit in host memory are not an exception but the kernel's OOM killer, which ends the whole
process: a sweep would lose every job after it. Synthetic weights are sized on the meta device first (well under a
second at full scale), a checkpoint from its safetensors headers, so such a job ends as an `oom` row instead.
"""
from __future__ import annotations

from dataclasses import replace

import psutil
import torch

from families.base import BuildSpec, Family
from families.units import module_bytes

META = torch.device("meta")
PROCESS_BYTES = 1 << 30  # the interpreter, torch and the pipeline's tokenizers, beside the weights


class HostMemoryShort(MemoryError):
    """The weights alone would take more host memory than is available."""


def available_host_bytes() -> int:
    return psutil.virtual_memory().available


def require_host_bytes(needed: int, what: str) -> None:
    """Raise HostMemoryShort unless `needed` bytes of weights (`what`, for the message) fit in host memory now."""
    available = available_host_bytes()
    if needed + PROCESS_BYTES > available:
        raise HostMemoryShort(
            f"{what} needs {needed / 2**30:.1f} GiB of host memory for its weights (plus about "
            f"{PROCESS_BYTES / 2**30:.0f} GiB for the process) and {available / 2**30:.1f} GiB is available: use a "
            "smaller variant, scale or dtype, or a host with more memory")


def weight_bytes(family: Family, spec: BuildSpec) -> int:
    """Bytes of every component's synthetic weights, counted on a meta-device build of the same model."""
    bundle = family.build(replace(spec, device=META, build_device=None, weights=None))
    return sum(module_bytes(c.module) for c in bundle.components)


def check_synthetic_fits(family: Family, spec: BuildSpec) -> None:
    """Raise HostMemoryShort when the model's synthetic weights would not fit in host memory."""
    require_host_bytes(weight_bytes(family, spec), f"{family.name} {spec.variant} at scale {spec.scale} in "
                                                   f"{str(spec.dtype).removeprefix('torch.')}")
