"""The HTTP tracking collector."""

__all__: list[str] = []
