"""The capture layer: everything that turns the outside world into raw events on Kafka.

The HTTP collector (``producers.collector``: pixel, JSON beacon, identify, webhooks,
the JS snippet), the Python publishers, CSV imports and the dead-letter topic. It
validates and never enriches: classification and identity stitching are the
worker's (``streams/``).
"""

from producers.dead_letters import DeadLetterPublisher
from producers.events import Rejected
from producers.kafka import EventProducer
from producers.publish import (
    ContactPublisher,
    DealPublisher,
    IdentityPublisher,
    RatePublisher,
    SpendPublisher,
    TouchPublisher,
)

__all__ = [
    "ContactPublisher",
    "DeadLetterPublisher",
    "DealPublisher",
    "EventProducer",
    "IdentityPublisher",
    "RatePublisher",
    "Rejected",
    "SpendPublisher",
    "TouchPublisher",
]
