"""Whether a Docker engine answers (testcontainers needs one)."""

from __future__ import annotations

from functools import lru_cache

__all__ = ["DOCKER_SKIP_REASON", "docker_available"]

DOCKER_SKIP_REASON = "Docker engine not available"


@lru_cache(maxsize=1)
def docker_available() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            client.ping()
        finally:
            client.close()
    except Exception:
        return False
    return True
