"""The embedded engine's directory lock: who holds it, and waiting until nobody else does.

Where it sits: under :func:`sinks.clickhouse.connect`, before a sink opens ``chdb://PATH``.

How the engine takes it (ClickHouse's ``StatusFile``, inside chdb): when the engine starts
it opens ``PATH/status`` (``O_WRONLY | O_CREAT | O_CLOEXEC``), takes
``flock(LOCK_EX | LOCK_NB)`` on it and writes ``PID: <pid>`` and its start time into it.
It holds the lock for its whole life; a clean shutdown closes and unlinks the file. A
second process opening the directory meanwhile fails at once: the engine prints ``Cannot
lock file PATH/status. Another server instance in same directory is already running`` and
clickhouse-connect raises a bare "Error initializing EmbeddedServer".

When it is released after the holder dies: a flock lock belongs to the open file, and the
kernel drops it when the file's last descriptor is closed. For a holder killed with
``kill -9`` that is while the kernel tears the process down, after ``kill`` has returned:
some milliseconds for an idle sink, longer on a loaded machine or while one of its
threads is stuck in the disk. A restart that lands in that window used to fail. The
status file itself stays behind with the dead PID; it is no lock (only the flock is), and
the next engine logs "unclean restart" and carries on.

So a sink waits, bounded by ``LEADSTREAM_ENGINE_LOCK_WAIT_SECONDS``, logging while it
does. The look is a ``flock`` of our own on the status file, released at once; the PID the
file names tells this process's own engine (which another connection may share) from
another process's.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import time
from pathlib import Path
from urllib.parse import urlparse

from sinks.errors import EngineLockedError

__all__ = ["engine_directory", "lock_holder", "wait_for_engine_lock"]

log = logging.getLogger("leadstream.sink")
STATUS_FILE = "status"
_PID = re.compile(rb"^PID:\s*(\d+)", re.MULTILINE)
_POLL_SECONDS = 0.1
_LOG_EVERY_SECONDS = 5.0


def engine_directory(url: str) -> Path | None:
    """The directory of a ``chdb://`` URL, read the way clickhouse-connect reads it; None in memory or for a server."""
    if not url.startswith("chdb:"):
        return None
    parsed = urlparse(url)
    # chdb:///abs/path: the path is the location; chdb://name/db: the netloc is, the path the database
    location = parsed.netloc.rpartition("@")[2] if parsed.netloc else parsed.path
    if location in ("", "memory", ":memory:"):
        return None
    return Path(os.path.realpath(location))


def lock_holder(directory: Path) -> int | None:
    """The PID of another process holding the engine lock of ``directory`` (0 when unnamed); None if none does."""
    try:
        fd = os.open(directory / STATUS_FILE, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None  # never opened, or shut down cleanly
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            match = _PID.search(os.pread(fd, 256, 0))
            pid = int(match.group(1)) if match else 0
            # our own engine: another connection in this process shares it, nothing to wait for
            return None if pid == os.getpid() else pid
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def wait_for_engine_lock(directory: Path, seconds: float) -> None:
    """Return once no other process holds the lock of ``directory``; EngineLockedError after ``seconds``."""
    holder = lock_holder(directory)
    if holder is None:
        return
    started = time.monotonic()
    log.warning("the embedded engine at %s is locked by process %s (another sink, or one that was killed and is "
                "still exiting); waiting up to %.0fs for it", directory, holder or "?", seconds)
    next_log = started + _LOG_EVERY_SECONDS
    while holder is not None:
        now = time.monotonic()
        if now - started >= seconds:
            raise EngineLockedError(
                f"the embedded engine at {directory} is still locked by process {holder or '?'} after "
                f"{seconds:.0f}s: another leadstream sink (or another program) is using that directory. Stop it, "
                "or point CLICKHOUSE_URL at another directory; LEADSTREAM_ENGINE_LOCK_WAIT_SECONDS sets the wait.")
        if now >= next_log:
            log.warning("still waiting for the embedded engine at %s (locked by process %s, %.0fs left)",
                        directory, holder or "?", seconds - (now - started))
            next_log = now + _LOG_EVERY_SECONDS
        time.sleep(min(_POLL_SECONDS, max(0.0, seconds - (now - started))))
        holder = lock_holder(directory)
    log.info("the embedded engine at %s is free after %.1fs", directory, time.monotonic() - started)
