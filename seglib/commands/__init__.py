"""CLI commands, one module per area; each registers itself with ``seglib.cli.command``."""
