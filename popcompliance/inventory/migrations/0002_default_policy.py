"""Seed the default policy: the secure configuration every new server is judged by."""

from django.db import migrations

SECURE_DEFAULT = {
    "name": "Secure default",
    "description": (
        "Cleartext login refused, 995 bound, a trusted certificate carrying the users' name, "
        "TLS 1.2 or later; warn 30 days and fail 7 days before certificate expiry."
    ),
    "is_default": True,
    "warn_days": 30,
    "critical_days": 7,
    "min_tls_version": "TLSv1.2",
    "use_system_trust": True,
    "allow_cleartext_port": True,
    "error_runs_before_unknown": 2,
}


def seed(apps, schema_editor):
    Policy = apps.get_model("inventory", "Policy")
    if not Policy.objects.filter(is_default=True).exists():
        Policy.objects.update_or_create(name=SECURE_DEFAULT["name"], defaults=SECURE_DEFAULT)


class Migration(migrations.Migration):
    dependencies = [("inventory", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
