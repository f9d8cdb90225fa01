"""The console commands, one module per area, each adding its commands to the root.

``leadstream.cli`` builds the root command and calls each module's ``register``.
"""

__all__: list[str] = []
