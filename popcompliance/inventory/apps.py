from django.apps import AppConfig


class InventoryConfig(AppConfig):
    name = "popcompliance.inventory"
    verbose_name = "Inventory"
