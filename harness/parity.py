"""Output parity against the resident reference, and the on-disk cache of reference outputs."""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from harness.atomic import write_atomic


def compare(output: torch.Tensor, reference: torch.Tensor) -> dict[str, Any]:
    """Bitwise equality, largest absolute difference and PSNR (dB, on the reference's value range)."""
    if output.shape != reference.shape:
        return dict(parity_exact=False, parity_max_abs=math.inf, parity_psnr_db=None)
    diff = (output.double() - reference.double()).abs()
    max_abs = float(diff.max()) if diff.numel() else 0.0
    mse = float((diff ** 2).mean()) if diff.numel() else 0.0
    span = float(reference.max() - reference.min()) if reference.numel() else 1.0
    psnr = math.inf if mse == 0 else 10 * math.log10(max(span, 1e-12) ** 2 / mse)
    return dict(parity_exact=bool(torch.equal(output, reference)), parity_max_abs=max_abs, parity_psnr_db=psnr)


def reference_key(settings: dict[str, Any]) -> str:
    """A stable hash of everything that affects the output."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:24]


class ReferenceCache:
    """Resident outputs on disk, keyed by the settings that produced them."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / f"{key}.safetensors"

    def load(self, key: str) -> torch.Tensor | None:
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            return load_file(str(path))["output"]
        except Exception:
            return None

    def store(self, key: str, output: torch.Tensor, settings: dict[str, Any]) -> None:
        meta = {k: str(v) for k, v in settings.items()}
        write_atomic(self.path(key), lambda tmp: save_file({"output": output.contiguous()}, str(tmp), metadata=meta))
