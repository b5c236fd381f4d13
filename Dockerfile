# The PopCompliance app image, used by the web, worker and beat services of docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    POPC_VAR_DIR=/app/var

WORKDIR /app
# Dependencies first: the layer is reused until requirements.txt changes. python-ldap (LDAP
# sign-in) has no wheel: it is built against OpenLDAP's and Cyrus SASL's headers, whose
# packages also bring the libraries it loads at run time. WeasyPrint lays out the PDF reports
# with Pango and HarfBuzz, in the DejaVu fonts.
COPY requirements.txt .
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev libldap2-dev libsasl2-dev \
       libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/* \
    && pip install -r requirements.txt

COPY . .
# Static files are collected once, at build; whitenoise serves them from STATIC_ROOT.
# var/ holds beat's schedule (a volume in compose) and belongs to the unprivileged user.
RUN SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput \
    && useradd --system --uid 10001 --no-create-home --home-dir /app popc \
    && mkdir -p /app/var \
    && chown -R popc /app/var \
    && chmod 0755 /app/docker/entrypoint.sh

USER popc
EXPOSE 8000
ENTRYPOINT ["/app/docker/entrypoint.sh"]
# web | worker | beat, or any command (e.g. `python manage.py scan --all`).
CMD ["web"]
