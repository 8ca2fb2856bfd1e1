"""What each reading thread holds: its cache of open handles and its GDAL options in force.

rasterio datasets are not thread-safe, so each thread of a process has its own bounded LRU
cache (``max_open`` handles; the least recently used is closed). Nothing open crosses a
process boundary: :class:`ThreadHandles` notices a fork (the process id changes) and
forgets the parent's caches, so DataLoader workers started by ``fork`` or ``spawn`` each
own their handles.

GDAL options are in force only inside :meth:`ThreadHandles.scope` (set, then undone, so the
caller's configuration is back after) or, in the threads of geochips' own pools, for good
and thread-locally (:meth:`ThreadHandles.own_thread`). A scope for local files leaves out
the network options geochips defaults to (:func:`geochips.io.settings.local_values`): they
cost a cached-tile read ~15 % (issue 15) and change nothing there.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from rasterio.env import set_gdal_config

from geochips.io import settings
from geochips.io.handles import HandleCache
from geochips.io.settings import config_values, local_values

MAX_OPEN_RANGE = (8, 256)
"""Bounds of :func:`default_max_open`, handles per thread."""
SHARING_THREADS = 8
"""Reading threads a process is assumed to run (``__getitems__`` uses 8 for remote scenes)."""


def default_max_open() -> int:
    """Handles each reading thread keeps: a quarter of the file-descriptor limit, shared.

    Shuffled reads over many scenes reopened a file for almost every chip with 8 handles
    (669 chips/s over 104 scenes, 5,265 with all open: issue 14). An open COG holds one
    descriptor and its parsed header (a few kB; the decoded tiles live in GDAL's block
    cache, bounded apart). So a quarter of the soft ``RLIMIT_NOFILE`` is shared by
    :data:`SHARING_THREADS` threads, within :data:`MAX_OPEN_RANGE`: 256 with the usual
    container limits (20k descriptors or more), 32 with a desktop's 1024, and 32 where
    there is no ``resource`` module (Windows).
    """
    try:
        import resource  # POSIX only
    except ImportError:
        return 32
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_OPEN_RANGE[1]
    low, high = MAX_OPEN_RANGE
    return max(low, min(high, soft // 4 // SHARING_THREADS))


LOCAL, NETWORK = "local", "network"
"""What the options in force in a thread cover: local reads, or every read."""


class _Scope:
    """Options set for the reads of a thread meanwhile (a class: it wraps every ``ds[i]``)."""

    __slots__ = ("kind", "local", "outer", "saved", "values")

    def __init__(self, local: threading.local, values: dict[str, str | int], kind: str) -> None:
        self.local, self.values, self.kind = local, values, kind

    def __enter__(self) -> None:
        self.outer = getattr(self.local, "scoped", None)
        self.saved = settings.apply(self.values)
        self.local.scoped = self.kind

    def __exit__(self, *exc: object) -> None:
        self.local.scoped = self.outer
        settings.restore(self.saved)


class ThreadHandles:
    """The handle cache and GDAL scope of each thread, in the process that made them.

    Args:
        max_open: open datasets kept per thread.
        gdal_options: the options :meth:`scope` and :meth:`own_thread` set (GDAL's words).
    """

    def __init__(self, max_open: int, gdal_options: Mapping[str, Any]) -> None:
        self.max_open = max_open
        self.gdal_options = gdal_options
        self._pid: int | None = None
        self._local = threading.local()
        self._caches: list[HandleCache] = []
        self._lock = threading.Lock()
        self._values = config_values(gdal_options)
        self._local_values = local_values(self._values)
        self._network_only = {k: v for k, v in self._values.items() if k not in self._local_values}

    def cache(self) -> HandleCache:
        """Return the calling thread's handle cache, made on first use in this process."""
        pid = os.getpid()
        if self._pid != pid:
            with self._lock:
                if self._pid != pid:
                    # A forked child inherits the parent's handles in memory: forget them
                    # without closing (closing would touch the parent's file state).
                    self._local = threading.local()
                    self._caches = []
                    self._pid = pid
        cache: HandleCache | None = getattr(self._local, "cache", None)
        if cache is None:
            cache = HandleCache(self.max_open)
            self._local.cache = cache
            with self._lock:
                self._caches.append(cache)
        return cache

    def scope(self, network: bool = True) -> AbstractContextManager[Any]:
        """Return the context reads of this thread run in: the GDAL options set, then undone.

        Entering it once around many reads (a batch) sets the options once. ``network``
        says whether the reads may reach remote (or ``/vsi``) files; without it, the
        default network options are left out. Inside a local scope, a scope for the
        network adds them. In a thread :meth:`own_thread` has prepared it does nothing.
        Options the caller set before (an outer ``rasterio.Env``) are back after it.
        """
        self.cache()  # a fork forgets the parent's thread state first
        scoped = getattr(self._local, "scoped", None)
        if scoped == NETWORK or (scoped == LOCAL and not network):
            return nullcontext()
        if scoped == LOCAL:
            return _Scope(self._local, self._network_only, NETWORK)
        if network:
            return _Scope(self._local, self._values, NETWORK)
        return _Scope(self._local, self._local_values, LOCAL)

    def own_thread(self) -> None:
        """Set the GDAL options for good in the calling thread, which geochips owns.

        Outside the main thread rasterio sets options thread-locally
        (CPLSetThreadLocalConfigOption), so they stay with that thread and its reads need
        no :meth:`scope` each.
        """
        if threading.current_thread() is threading.main_thread():
            return  # process-wide there: each read scopes its options instead
        self.cache()
        for key, value in self._values.items():
            set_gdal_config(key, value)
        self._local.scoped = NETWORK

    def open_count(self) -> int:
        """Return how many datasets this process holds open, over all threads."""
        return sum(len(c) for c in self._caches) if self._pid == os.getpid() else 0

    def close(self) -> None:
        """Close every handle this process opened."""
        if self._pid == os.getpid():
            with self._lock:
                for cache in self._caches:
                    cache.clear()
