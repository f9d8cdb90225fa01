"""leadstream's top layer: the console commands, the local stack and the demo.

Everything a user runs starts here (``leadstream ...``); it may import every layer
below it (``ground``, ``schemas``, the stages), and nothing below imports it.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("leadstream")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
