from django.db import migrations, models

# A policy's minimum TLS version becomes the nearest named profile: TLS 1.2 was the default
# and is Mozilla intermediate's floor; older minimums were legacy allowances (Mozilla old);
# TLS 1.3 only is Mozilla modern.
PROFILE_FOR_MINIMUM = {
    "SSLv3": "mozilla-old",
    "TLSv1": "mozilla-old",
    "TLSv1.1": "mozilla-old",
    "TLSv1.2": "mozilla-intermediate",
    "TLSv1.3": "mozilla-modern",
}


def profiles_from_minimums(apps, schema_editor):
    Policy = apps.get_model("inventory", "Policy")
    for minimum, profile in PROFILE_FOR_MINIMUM.items():
        Policy.objects.filter(min_tls_version=minimum).update(tls_profile=profile)


def minimums_from_profiles(apps, schema_editor):
    Policy = apps.get_model("inventory", "Policy")
    Policy.objects.filter(tls_profile="mozilla-old").update(min_tls_version="TLSv1")
    Policy.objects.filter(tls_profile="mozilla-modern").update(min_tls_version="TLSv1.3")


class Migration(migrations.Migration):
    dependencies = [
        ("inventory", "0006_import_job"),
    ]

    operations = [
        migrations.AddField(
            model_name="policy",
            name="tls_profile",
            field=models.CharField(
                choices=[
                    ("mozilla-modern", "Mozilla modern"),
                    ("mozilla-intermediate", "Mozilla intermediate"),
                    ("mozilla-old", "Mozilla old"),
                    ("nist-sp800-52r2", "NIST SP 800-52 Rev. 2"),
                    ("bsi-tr-02102-2", "BSI TR-02102-2"),
                    ("pci-dss-4", "PCI DSS 4.0"),
                ],
                default="mozilla-intermediate",
                help_text="The standard the accepted TLS versions, suites and key sizes are judged by.",
                max_length=40,
                verbose_name="TLS profile",
            ),
        ),
        migrations.RunPython(profiles_from_minimums, minimums_from_profiles),
        migrations.RemoveField(
            model_name="policy",
            name="min_tls_version",
        ),
    ]
