from django.apps import AppConfig


class DashboardConfig(AppConfig):
    """The read side in the browser: fleet overview, server pages, certificates."""

    name = "popcompliance.dashboard"
