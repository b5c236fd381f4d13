"""Move the API tokens of Django REST framework's authtoken table, which held them in clear,
into ApiToken as digests, so the tokens clients already use keep working; then empty that
table. The migrated tokens never expire (they never did); their owners see them as "token from
before hashing" and may revoke them. Not reversible: the clear tokens are gone."""

import hashlib

from django.db import migrations

OLD_TABLE = "authtoken_token"
MIGRATED_NAME = "token from before hashing"


def hash_existing_tokens(apps, schema_editor):
    connection = schema_editor.connection
    if OLD_TABLE not in connection.introspection.table_names():
        return  # a database created after authtoken left INSTALLED_APPS
    api_token = apps.get_model("accounts", "ApiToken")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT key, user_id, created FROM {OLD_TABLE}")
        rows = cursor.fetchall()
        api_token.objects.bulk_create(
            api_token(
                user_id=user_id,
                name=MIGRATED_NAME,
                prefix=key[:8],
                digest=hashlib.sha256(key.encode()).hexdigest(),
                created_at=created,
            )
            for key, user_id, created in rows
        )
        if connection.vendor == "sqlite":
            # Overwrite the deleted rows in the file too, not only unlink them.
            cursor.execute("PRAGMA secure_delete = ON")
        cursor.execute(f"DELETE FROM {OLD_TABLE}")


class Migration(migrations.Migration):
    dependencies = [("accounts", "0002_api_tokens")]

    operations = [migrations.RunPython(hash_existing_tokens, migrations.RunPython.noop)]
