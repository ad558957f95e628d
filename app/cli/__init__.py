"""Command-line entry points for Tunix Tune."""
