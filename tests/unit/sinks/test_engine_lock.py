"""The engine directory lock, against a real flock held by another process (no engine needed).

The holder does what the engine does to ``<dir>/status``: an exclusive flock and its PID
in the file.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from sinks.engine_lock import engine_directory, lock_holder, wait_for_engine_lock
from sinks.errors import EngineLockedError

HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o666)
fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
os.ftruncate(fd, 0)
os.write(fd, b"PID: %d\\nStarted at: now\\n" % os.getpid())
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
"""


@contextmanager
def held(directory: Path, seconds: float) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the directory's lock for ``seconds`` (then it exits, and the kernel frees it)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(directory / "status"), str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()


def test_engine_directory_reads_urls_like_the_driver(tmp_path: Path) -> None:
    """chdb:///abs/path is a directory; memory and servers have none."""
    assert engine_directory(f"chdb://{tmp_path}/") == tmp_path.resolve()
    assert engine_directory("chdb://memory") is None and engine_directory("chdb://:memory:") is None
    assert engine_directory("http://localhost:8123") is None


def test_free_directory_has_no_holder(tmp_path: Path) -> None:
    """No status file, or one nobody locks (what a killed engine leaves behind): nobody holds it."""
    assert lock_holder(tmp_path) is None
    (tmp_path / "status").write_text("PID: 1\nStarted at: long ago\n")
    assert lock_holder(tmp_path) is None


def test_another_process_is_named_and_this_one_is_not(tmp_path: Path) -> None:
    """A lock another process holds names its PID; this process's own engine is no holder to wait for."""
    with held(tmp_path, 30) as proc:
        assert lock_holder(tmp_path) == proc.pid
    fd = os.open(tmp_path / "status", os.O_WRONLY | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.write(fd, b"PID: %d\n" % os.getpid())
        assert lock_holder(tmp_path) is None
    finally:
        os.close(fd)


def test_wait_ends_when_the_holder_dies(tmp_path: Path) -> None:
    """The wait returns once the holding process is gone, well before the bound."""
    with held(tmp_path, 0.5):
        started = time.monotonic()
        wait_for_engine_lock(tmp_path, 30)
        assert 0.3 < time.monotonic() - started < 10


def test_wait_is_bounded(tmp_path: Path) -> None:
    """A holder that stays: EngineLockedError after the bound, naming the holder and the setting."""
    with held(tmp_path, 30) as proc:
        started = time.monotonic()
        with pytest.raises(EngineLockedError, match=f"still locked by process {proc.pid} after 1s") as error:
            wait_for_engine_lock(tmp_path, 1)
        assert time.monotonic() - started >= 1
        assert "LEADSTREAM_ENGINE_LOCK_WAIT_SECONDS" in str(error.value)
