"""What tests and benchmarks share; no product module imports it (an import-linter contract).

``harness`` drives stream workers and reads topics, ``processes`` runs leadstream commands
as children, ``waiting`` polls real conditions, ``cluster`` runs a multi-node Kafka. They
reuse the product's environment builder and wait (``leadstream.stack``) rather than copy them.
"""

__all__: list[str] = []
