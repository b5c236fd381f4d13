from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Sign-in, password changes, and the three roles (viewer, operator, admin)."""

    name = "popcompliance.accounts"
    default_auto_field = "django.db.models.BigAutoField"
