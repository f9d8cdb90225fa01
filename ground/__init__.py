"""The ground of leadstream: settings, errors, Kafka admin and the shared vocabulary.

Every other package stands on this one and it imports none of them, so a name
defined here (a topic, a click id, a touch type group) means the same thing in the
collector, the worker and the sink.
"""

from ground.errors import LeadstreamError
from ground.settings import Settings, get_settings

__all__ = ["LeadstreamError", "Settings", "get_settings"]
