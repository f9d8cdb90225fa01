"""Whether a Docker engine answers (testcontainers needs one)."""

from __future__ import annotations

import os
import socket
from functools import lru_cache

__all__ = ["DOCKER_SKIP_REASON", "docker_available"]

DOCKER_SKIP_REASON = "Docker engine not available"


@lru_cache(maxsize=1)
def docker_available() -> bool:
    """Ask the engine's /_ping over its socket (DOCKER_HOST or the default unix socket).

    A raw request rather than the docker SDK: the SDK leaks its socket when no engine
    listens, which the test run treats as an error.
    """
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        if host.startswith("unix://"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address: object = host.removeprefix("unix://")
        elif host.startswith("tcp://"):
            hostport = host.removeprefix("tcp://").rsplit(":", 1)
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            address = (hostport[0], int(hostport[1]))
        else:
            return False
        with sock:
            sock.settimeout(3)
            sock.connect(address)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return b" 200 " in sock.recv(64)
    except OSError:
        return False
