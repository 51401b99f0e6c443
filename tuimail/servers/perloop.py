"""One object per asyncio event loop, made at first use and dropped with its loop (no RFC): the
loop's deadline wheel (`deadlines`), its committer (`committer`) and its queue of session closes
(`closes`) each live per loop, so a test's fresh loop gets fresh ones."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerLoop(Generic[T]):
    """`get(loop)`: the loop's `make(loop)`, made once."""

    def __init__(self, make: Callable[[asyncio.AbstractEventLoop], T]) -> None:
        self._make = make
        self._made: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = weakref.WeakKeyDictionary()

    def get(self, loop: asyncio.AbstractEventLoop) -> T:
        found = self._made.get(loop)
        if found is None:
            found = self._made[loop] = self._make(loop)
        return found
