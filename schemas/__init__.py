"""Contracts shared by every part of Tunix Tune: events, API bodies, the job spec, tables, settings."""
