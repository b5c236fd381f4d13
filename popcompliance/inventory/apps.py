from django.apps import AppConfig
from django.core import checks
from django.db.models.signals import post_migrate

from popcompliance.inventory.credentials import check_credentials_key
from popcompliance.inventory.rekeying import move_off_former_keys


class InventoryConfig(AppConfig):
    name = "popcompliance.inventory"
    verbose_name = "Inventory"

    def ready(self) -> None:
        checks.register(check_credentials_key, checks.Tags.security, deploy=True)
        post_migrate.connect(move_off_former_keys, sender=self)
