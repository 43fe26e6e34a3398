"""Attaching callbacks to modules and their entry points, and removing them cleanly."""
from __future__ import annotations

import functools
from typing import Any, Callable

from torch import nn


class HookSet:
    """Every hook one strategy installed; `remove()` takes them all off."""

    def __init__(self) -> None:
        self._removers: list[Callable[[], None]] = []

    def before_entry(self, module: nn.Module, entry_points: tuple[str, ...], callback: Callable[[], None]) -> None:
        """Run `callback()` before `forward` (a pre-hook) or before any other named method (a wrapper)."""
        for entry in entry_points:
            if entry == "forward":
                self.around_forward(module, before=callback)
                continue
            original = getattr(module, entry)

            @functools.wraps(original)
            def wrapper(*args: Any, _original: Callable = original, **kwargs: Any) -> Any:
                callback()
                return _original(*args, **kwargs)

            setattr(module, entry, wrapper)
            self._removers.append(functools.partial(delattr, module, entry))

    def around_forward(self, module: nn.Module, before: Callable[[], None] | None = None,
                       after: Callable[[], None] | None = None) -> None:
        """Run `before()` ahead of the module's forward and `after()` once it returns."""
        if before is not None:
            handle = module.register_forward_pre_hook(lambda *_: before())
            self._removers.append(handle.remove)
        if after is not None:
            handle = module.register_forward_hook(lambda *_: after())
            self._removers.append(handle.remove)

    def remove(self) -> None:
        while self._removers:
            self._removers.pop()()
