"""The inventory: servers to scan, the policies they are judged by, and their tags."""
