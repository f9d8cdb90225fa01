"""What tests and benchmarks share; no product module imports it (an import-linter contract), save the demo.

``harness`` drives stream workers and reads topics, ``processes`` runs leadstream commands
as children, ``waiting`` polls real conditions, ``cluster`` runs a multi-node Kafka, ``synthetic``
generates the seeded raw events of the oracle tests (``leadstream demo`` streams the same
kind of dataset: the contract's one named exception). They
reuse the product's environment builder and wait (``leadstream.stack``) rather than copy them.
"""

__all__: list[str] = []
