"""The chaos suite: the pipeline under crashes, broker failures and outages (see conftest.py)."""
