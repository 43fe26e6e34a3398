"""Facts about the software and machine recorded in every result row."""
from __future__ import annotations

import functools
import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import diffusers
import torch


@functools.cache
def git_sha() -> str | None:
    """The checkout's commit; `HARNESS_GIT_SHA` names it where `.git` is missing or stale (a copied tree: the GPU
    machine's copy of `.git` stood at an older commit twice)."""
    if os.environ.get("HARNESS_GIT_SHA"):
        return os.environ["HARNESS_GIT_SHA"]
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def environment(device: torch.device | None) -> dict[str, Any]:
    return dict(
        device_name=device_name(device) if device is not None else None,
        torch_version=torch.__version__, diffusers_version=diffusers.__version__, git_sha=git_sha(),
        hostname=platform.node(), timestamp=datetime.now(timezone.utc).isoformat(timespec="seconds"))
