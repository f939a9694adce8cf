"""Pause Python's cyclic garbage collector while a plan is computed.

Planning allocates millions of small, acyclic objects (dataclasses, dicts, tuples) that
reference counting frees on its own; the cyclic collector's full passes over that heap
cost ~40% of a 100,000-resource plan and grow faster than the plan (see
docs/benchmarks.md, B2). The collector is switched back on afterwards, so whatever
cycles were made are collected at its next pass.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic GC inside the block (nests; leaves a collector already off alone)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
