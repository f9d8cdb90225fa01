"""The oracle tests' dataset generator; it ships with the product as ``leadstream.testing.synthetic``
because ``leadstream demo`` streams the same kind of dataset."""

from leadstream.testing.synthetic import (
    CONTACT_SOURCES,
    DAY_MS,
    DEMO_CHANNELS,
    DEMO_SIZES,
    OUTBOUND_TYPES,
    START_MS,
    Arrival,
    ChannelSpec,
    Dataset,
    Record,
    arrival_stats,
    generate,
)

__all__ = [
    "CONTACT_SOURCES",
    "DAY_MS",
    "DEMO_CHANNELS",
    "DEMO_SIZES",
    "OUTBOUND_TYPES",
    "START_MS",
    "Arrival",
    "ChannelSpec",
    "Dataset",
    "Record",
    "arrival_stats",
    "generate",
]
