"""The repository's scripts: make run, make ask, the MeltanoHub definition (importable by the tests)."""
