#!/bin/sh
# Entry point of the app image: `web`, `worker [LOCATION]` or `beat` (see docker-compose.yml), or any
# other command, run as given. Every role first waits until the database answers; `web` then
# applies migrations and makes sure the admin account exists (DJANGO_SUPERUSER_*).
set -eu

wait_for_database() {
    python - <<'PY'
import sys
import time

import django

django.setup()
from django.db import connection

for attempt in range(60):
    try:
        connection.ensure_connection()
        sys.exit(0)
    except Exception as exc:  # the database is still starting
        print(f"waiting for the database ({type(exc).__name__})", flush=True)
        time.sleep(2)
sys.exit("the database did not answer within 120 s")
PY
}

export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-popcompliance.settings}"

case "${1:-web}" in
    web)
        wait_for_database
        python manage.py migrate --noinput
        python manage.py ensure_admin
        # --timeout 120: a compliance report's PDF of 10,000 servers takes up to a minute on a
        # loaded machine (bench/reports.py), and a sync worker is killed at its timeout.
        exec gunicorn popcompliance.wsgi --bind 0.0.0.0:8000 --access-logfile - \
            --workers "${WEB_CONCURRENCY:-3}" --timeout 120
        ;;
    worker)
        wait_for_database
        # `worker dmz`: a probe location's worker, which takes that location's queue only.
        exec celery -A popcompliance worker --pool threads --concurrency 16 --loglevel info \
            ${2:+--queues "$2"}
        ;;
    beat)
        wait_for_database
        exec celery -A popcompliance beat --schedule "${POPC_VAR_DIR:-/app/var}/celerybeat-schedule" \
            --loglevel info
        ;;
    *)
        exec "$@"
        ;;
esac
