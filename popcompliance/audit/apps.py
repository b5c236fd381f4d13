from django.apps import AppConfig


class AuditConfig(AppConfig):
    """Connects the recorder to the model signals of every audited model (see registry.py)."""

    name = "popcompliance.audit"
    verbose_name = "Audit log"

    def ready(self) -> None:
        from popcompliance.audit import recorder

        recorder.connect()
