"""Whether a model's synthetic weights fit in host memory, checked before any weight is made.

A model built in host memory that does not fit there is not an exception but the kernel's OOM killer, which ends
the whole process: a sweep would lose every job after it. The model is sized on the meta device first (well under
a second at full scale), so such a job ends as an `oom` row with both sizes instead.
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


def weight_bytes(family: Family, spec: BuildSpec) -> int:
    """Bytes of every component's weights, counted on a meta-device build of the same model."""
    bundle = family.build(replace(spec, device=META, build_device=None))
    return sum(module_bytes(c.module) for c in bundle.components)


def available_host_bytes() -> int:
    return psutil.virtual_memory().available


def check_host_fits(family: Family, spec: BuildSpec) -> int:
    """Raise HostMemoryShort when the weights would not fit in the host memory available now; else their bytes."""
    needed = weight_bytes(family, spec)
    available = available_host_bytes()
    if needed + PROCESS_BYTES > available:
        raise HostMemoryShort(
            f"{family.name} {spec.variant} at scale {spec.scale} in {str(spec.dtype).removeprefix('torch.')} needs "
            f"{needed / 2**30:.1f} GiB of host memory for its weights (plus about {PROCESS_BYTES / 2**30:.0f} GiB "
            f"for the process) and {available / 2**30:.1f} GiB is available: use a smaller variant, scale or dtype, "
            "or a host with more memory")
    return needed
