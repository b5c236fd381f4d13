from django.apps import AppConfig


class WaiversConfig(AppConfig):
    name = "popcompliance.waivers"
    verbose_name = "Exceptions (waivers)"

    def ready(self) -> None:
        from popcompliance.waivers import signals  # noqa: F401  (connects the receivers)
