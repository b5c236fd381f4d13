"""Maintenance windows: planned spans during which a server's changes send no alert email."""
