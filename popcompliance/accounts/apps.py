from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Sign-in (local accounts, LDAP, OpenID Connect), password changes, and the three roles
    (viewer, operator, admin)."""

    name = "popcompliance.accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from popcompliance.accounts import directory

        directory.connect()
