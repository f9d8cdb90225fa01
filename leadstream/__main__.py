"""``python -m leadstream`` runs the command line (used to start child processes)."""

from leadstream.cli import main

main()
