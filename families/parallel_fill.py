"""Random initialisation of large host tensors on every core, reproducibly.

A CPU's random-number generator fills one tensor from one thread (about 0.3-0.4 GB/s of bf16 here), so building
FLUX.1-dev's 34 GB of synthetic weights in host memory took minutes. Inside `ParallelFill`, every `uniform_` and
`normal_` on a large contiguous tensor (from `nn.init` or a module's own init) is split into fixed chunks, each
filled from its own generator seeded by (seed, call, chunk): the values depend on neither the thread count nor
the order in which threads run. Smaller tensors keep the default generator.
"""
from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

CHUNK = 1 << 22  # elements per chunk: fixed, so the values are the same on any machine
FILLS = (torch.ops.aten.uniform_.default, torch.ops.aten.normal_.default)
# names the generator in reference keys: outputs made from weights of another generator are other outputs
GENERATOR = f"chunked-{CHUNK}-v1"


def chunk_seed(seed: int, call: int, chunk: int) -> int:
    """32 bits (all a CPU generator's Mersenne Twister takes) mixed from the three numbers."""
    return int.from_bytes(hashlib.blake2b(f"{seed}:{call}:{chunk}".encode(), digest_size=4).digest(), "little")


class ParallelFill(TorchDispatchMode):
    """Splits large random fills over a thread pool (ATen releases the GIL while each chunk fills)."""

    def __init__(self, seed: int, threads: int | None = None) -> None:
        super().__init__()
        self.seed = seed
        self.threads = threads or torch.get_num_threads()
        self.calls = 0
        self._pool: ThreadPoolExecutor | None = None

    def __enter__(self) -> "ParallelFill":
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="init-fill")
        return super().__enter__()

    def __exit__(self, *exc: Any) -> None:
        super().__exit__(*exc)
        self._pool.shutdown()
        self._pool = None

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = dict(kwargs or {})
        tensor = args[0] if args else None
        if (func not in FILLS or kwargs.get("generator") is not None or tensor.device.type != "cpu"
                or not tensor.is_contiguous() or tensor.numel() < 2 * CHUNK):
            return func(*args, **kwargs)
        self.calls += 1
        flat, call = tensor.view(-1), self.calls
        kwargs.pop("generator", None)

        def fill(chunk: int) -> None:
            generator = torch.Generator().manual_seed(chunk_seed(self.seed, call, chunk))
            func(flat[chunk * CHUNK:(chunk + 1) * CHUNK], *args[1:], generator=generator, **kwargs)

        list(self._pool.map(fill, range(-(-tensor.numel() // CHUNK))))
        return tensor
