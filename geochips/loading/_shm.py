"""Shared memory that only geochips can lend across processes (Linux; the OS side of slots).

A slot is a ``memfd`` a worker maps once. It reaches the main process only as a file
descriptor that :func:`geochips.loading.slots` pickles itself (:meth:`Memory.lend`); torch never
sees it as shared memory, so a tensor on it that torch pickles is copied into fresh shared
memory (what torch does for any tensor not yet shared). Everything here is the standard
library: no private torch API.
"""

from __future__ import annotations

import mmap
import os
import weakref
from multiprocessing.reduction import HAVE_SEND_HANDLE, DupFd
from typing import Any

OPT_OUT = "GEOCHIPS_REUSE_BATCH_MEMORY"
"""Set to ``0`` to give DataLoader workers plain memory for every batch (no slots)."""


def available() -> bool:
    """Whether workers may reuse batch memory: Linux fd passing, and not opted out."""
    return (
        os.environ.get(OPT_OUT, "1").strip().lower() not in ("0", "false", "no", "off")
        and hasattr(os, "memfd_create")
        and HAVE_SEND_HANDLE
    )


class Memory:
    """``nbytes`` of shared memory, mapped in this process; the fd closes with the object."""

    def __init__(self, nbytes: int) -> None:
        fd = os.memfd_create("geochips-batch", os.MFD_CLOEXEC)
        try:
            os.ftruncate(fd, nbytes)
            self.map = mmap.mmap(fd, nbytes)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        weakref.finalize(self, os.close, fd)

    def lend(self) -> Any:
        """A picklable handle another process turns into its own mapping (:func:`borrow`).

        The handle duplicates the fd now: closing this Memory later does not revoke it.
        """
        return DupFd(self.fd)


def borrow(handle: Any, nbytes: int) -> mmap.mmap:
    """Map the memory of an unpickled :meth:`Memory.lend` handle (receives the fd once)."""
    fd = handle.detach()
    try:
        return mmap.mmap(fd, nbytes)
    finally:
        os.close(fd)
