"""The run's threads for the CPU frame code (the reader's time parse, clean, features)."""

from __future__ import annotations

from typing import Any, Callable, Sequence


def in_threads(fn: Callable[[Any], Any], items: Sequence[Any], name: str = "gpuseg") -> list:
    """``fn`` over ``items`` in the run's threads (``--threads``: ``backend.RUN_THREADS``;
    pandas' and NumPy's kernels release the GIL), the results in the items' order."""
    from . import backend as _backend

    threads = min(_backend.RUN_THREADS or 1, len(items))
    if threads <= 1:
        return [fn(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads, thread_name_prefix=name) as pool:
        return list(pool.map(fn, items))
