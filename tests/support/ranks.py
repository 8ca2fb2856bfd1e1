"""Spawned ranks for multi-process tests: a free port, and a join that cannot hang."""

from __future__ import annotations

import socket
from typing import Any

import pytest
import torch.multiprocessing as mp


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn_ranks(fn: Any, args: tuple[Any, ...], nprocs: int = 2, timeout: int = 120) -> None:
    """Run ``fn(rank, *args)`` in ``nprocs`` spawned processes; fail (killing them) on a hang."""
    context = mp.start_processes(fn, args=args, nprocs=nprocs, join=False, start_method="spawn")
    try:
        deadline = timeout
        while not context.join(timeout=1):
            deadline -= 1
            if deadline == 0:
                pytest.fail(f"the spawned ranks did not finish in {timeout} s")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
