"""File descriptors of an attempt: pipes, waiting on them, closing them."""

from __future__ import annotations

import fcntl
import os
import selectors
import time
import subprocess

F_SETPIPE_SZ = 1031


def pipe(big: bool = False) -> tuple[int, int]:
    r, w = os.pipe()
    if big:
        try:
            fcntl.fcntl(w, F_SETPIPE_SZ, 1024 * 1024)
        except OSError:
            pass
    return r, w


def close_fds(*fds: int | None) -> None:
    for fd in fds:
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass


def reap(proc: subprocess.Popen) -> None:
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_readable(fd: int, timeout: float) -> bool:
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        return bool(sel.select(max(0.0, timeout)))


def read_until_eof(fd: int, deadline: float, limit: int = 1 << 20) -> bytes:
    data = bytearray()
    while len(data) < limit:
        if not wait_readable(fd, deadline - time.monotonic()):
            raise TimeoutError
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    return bytes(data)

