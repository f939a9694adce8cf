"""Maintenance scripts (not part of the runtime package)."""
