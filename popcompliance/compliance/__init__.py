"""Compliance: scans, per-check state, the history of changes, certificates and snapshots."""
