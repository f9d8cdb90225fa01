"""sinks package."""

__all__: list[str] = []
