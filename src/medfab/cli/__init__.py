"""Thin command-line interface. Modules here import only typer/rich at import time (fast --help)."""
