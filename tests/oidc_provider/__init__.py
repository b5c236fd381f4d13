"""A small OpenID Connect provider for the single sign-on tests: a Django project of its own on
django-oauth-toolkit, run in a separate process (gunicorn, over https with the tests' CA) by
tests/oidc_server.py. Never imported by the dashboard or its tests' own Django settings."""
