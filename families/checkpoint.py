"""Loading a real checkpoint from a local diffusers folder (safetensors only, never unpickling)."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from harness.errors import HarnessError
from harness.host_fit import require_host_bytes

# bytes per element of safetensors' integer and boolean types; floating tensors load in the requested dtype
STORED_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "I16": 2, "U16": 2, "I32": 4, "U32": 4, "I64": 8, "U64": 8}


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


def checkpoint_bytes(path: Path, dtype: torch.dtype) -> int:
    """Bytes the folder's weights take once loaded in `dtype`, read from the safetensors headers alone."""
    total = 0
    for file in sorted(path.glob("*/*.safetensors")):
        with safe_open(str(file), framework="pt") as handle:
            for key in handle.keys():
                tensor = handle.get_slice(key)
                total += math.prod(tensor.get_shape()) * STORED_BYTES.get(tensor.get_dtype(), dtype.itemsize)
    return total


def load_pipeline(pipeline_cls: Any, path: Path, family: str, dtype: torch.dtype, device: torch.device) -> Any:
    """Load a local diffusers folder with safetensors only and move it to `device`. Loading goes through host
    memory, so the weights are sized first: too large a checkpoint ends the job as `oom`, not the process."""
    check_checkpoint(path, family, (pipeline_cls.__name__,))
    require_host_bytes(checkpoint_bytes(path, dtype), f"family.weights={path} in {str(dtype).removeprefix('torch.')}")
    try:
        pipe = pipeline_cls.from_pretrained(str(path), torch_dtype=dtype, use_safetensors=True, local_files_only=True)
    except Exception as exc:
        raise HarnessError(f"family.weights={path} could not be loaded: {type(exc).__name__}: {exc}") from exc
    return pipe.to(device)
