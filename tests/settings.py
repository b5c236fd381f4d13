"""Settings for the test suite: the project's settings on a real PostgreSQL by default.

POPC_TEST_DATABASE_URL picks the database (`make test` also runs the embedded-default tests
with a SQLite URL). The tests' own Redis is started by a fixture (tests/services.py).
"""

import os
import secrets

import dj_database_url

# Production settings refuse to start without a key of their own; the tests' is random, and the
# processes they start (make run, manage.py) inherit it.
os.environ.setdefault("SECRET_KEY", f"tests-{secrets.token_urlsafe(32)}")

from popcompliance.settings import *  # noqa: F403

TEST_DATABASE_URL = os.environ.get(
    "POPC_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/popcompliance"
)
DATABASES = {"default": dj_database_url.parse(TEST_DATABASE_URL)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    DATABASES["default"]["TEST"] = {"NAME": DATABASES["default"]["NAME"]}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
POPC_CONFIRMATION_DELAY = 1
# The emulated mail servers listen on loopback, which the guard refuses unless the allowlist
# covers it; everything else stays allowed, as in a deployment without an allowlist.
POPC_SCAN_ALLOW_NETWORKS = ["0.0.0.0/0", "::/0"]
