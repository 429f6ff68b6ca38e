"""Command-line interface (Typer + rich)."""
