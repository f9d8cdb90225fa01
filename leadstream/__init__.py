"""leadstream: settings, errors, the local broker and the command line.

The stage packages (``producers``, ``streams``, ``sinks``) and the shared vocabulary
(``schemas``) sit beside this one; this package holds what all of them share.
"""

from leadstream.errors import LeadstreamError
from leadstream.settings import Settings, get_settings

__all__ = ["LeadstreamError", "Settings", "get_settings"]
__version__ = "0.1.0"
