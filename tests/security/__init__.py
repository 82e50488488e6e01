"""Security tests, one file per threat."""
