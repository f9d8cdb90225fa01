"""The test oracle: a seeded synthetic dataset and a plain batch recomputation of it.

Nothing here talks to Kafka or ClickHouse. ``generator`` produces raw events exactly as
the producers would publish them (Touch, Identify, ContactChange, DealChange records);
``batch`` recomputes per-contact and per-deal state from those raw events following
docs/definitions.md; ``reports`` recomputes every report.
Integration tests stream the same events through the real pipeline and compare.
"""

from tests.oracle.generator import DEMO_CHANNELS, DEMO_SIZES, Dataset, generate

__all__ = ["DEMO_CHANNELS", "DEMO_SIZES", "Dataset", "generate"]
