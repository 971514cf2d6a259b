"""The package version (one place: `diffgrn.__version__`, run records, the CLI)."""

__version__ = "0.5.0"
