"""Loading a real checkpoint from a local diffusers folder (safetensors only, never unpickling)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from harness.errors import HarnessError


def check_checkpoint(path: Path, family: str, pipeline_classes: tuple[str, ...]) -> None:
    """Fail with one line unless `path` is a diffusers folder of this family with readable safetensors."""
    if not path.exists():
        raise HarnessError(f"family.weights={path} does not exist")
    index = path / "model_index.json"
    if not index.is_file():
        raise HarnessError(f"family.weights={path} is not a diffusers folder (no model_index.json)")
    try:
        class_name = json.loads(index.read_text())["_class_name"]
    except (ValueError, KeyError) as exc:
        raise HarnessError(f"family.weights={path}: model_index.json is unreadable ({exc})") from exc
    if class_name not in pipeline_classes:
        raise HarnessError(
            f"family.weights={path} holds a {class_name} checkpoint, not {family} ({', '.join(pipeline_classes)})")
    files = sorted(path.glob("*/*.safetensors"))
    if not files:
        raise HarnessError(f"family.weights={path} has no .safetensors weights (only safetensors are loaded)")
    for file in files:
        try:
            with safe_open(str(file), framework="pt") as handle:
                for key in handle.keys():
                    handle.get_slice(key)
        except Exception as exc:  # safetensors raises several types for damaged files
            raise HarnessError(f"family.weights: {file} is truncated or corrupt ({type(exc).__name__}: {exc})") from exc


def load_pipeline(pipeline_cls: Any, path: Path, family: str, dtype: torch.dtype, device: torch.device) -> Any:
    """Load a local diffusers folder with safetensors only and move it to `device`."""
    check_checkpoint(path, family, (pipeline_cls.__name__,))
    try:
        pipe = pipeline_cls.from_pretrained(str(path), torch_dtype=dtype, use_safetensors=True, local_files_only=True)
    except Exception as exc:
        raise HarnessError(f"family.weights={path} could not be loaded: {type(exc).__name__}: {exc}") from exc
    return pipe.to(device)
