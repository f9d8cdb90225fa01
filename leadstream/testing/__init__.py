"""What tests and benchmarks share; no product module imports it."""

__all__: list[str] = []
