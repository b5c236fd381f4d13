from django.apps import AppConfig
from django.core import checks

from popcompliance.inventory.credentials import check_credentials_key


class InventoryConfig(AppConfig):
    name = "popcompliance.inventory"
    verbose_name = "Inventory"

    def ready(self) -> None:
        checks.register(check_credentials_key, checks.Tags.security, deploy=True)
