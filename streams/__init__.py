"""streams package."""

__all__: list[str] = []
