"""The test suite: folders mirror the package (see tests/README.md)."""
