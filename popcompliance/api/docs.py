"""The API's documentation pages: Swagger UI at /api/v1/docs/ and Redoc at /api/v1/redoc/,
both drawn from the OpenAPI schema at /api/v1/schema/.

Their scripts and styles come from drf-spectacular-sidecar through our own static files, never
from a CDN (the dashboard must work on an intranet). Our templates (templates/api/) leave out
the inline `<style>` and `<script>` of drf-spectacular's own, so the pages pass the site's
Content Security Policy except where popcompliance.security says otherwise.

Who may read them: any signed-in account, by session or token, as for the schema. They are
pages for a browser, so an anonymous visitor is sent to sign in and back, as on the dashboard,
rather than shown a bare 401.
"""

from __future__ import annotations

from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponseBase
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerSplitView
from rest_framework.exceptions import NotAuthenticated
from rest_framework.views import APIView

SCHEMA_URL_NAME = "api:schema"


class SignInFirst(APIView):
    """Base of a documentation page: an anonymous visitor goes to the login page (a wrong
    token is still a 401: it is a client's mistake, not a person's). Who may read is
    SPECTACULAR_SETTINGS["SERVE_PERMISSIONS"], which the drf-spectacular views apply."""

    def handle_exception(self, exc: Exception) -> HttpResponseBase:
        if isinstance(exc, NotAuthenticated):
            return redirect_to_login(self.request.get_full_path())
        return super().handle_exception(exc)


class SwaggerDocsView(SignInFirst, SpectacularSwaggerSplitView):
    """Swagger UI: every operation, with "Try it out" under the reader's own session (the
    page's script sends the CSRF token on writes). The split view serves the script that
    starts Swagger UI from this same URL with `?script`, not inline."""

    url_name = SCHEMA_URL_NAME
    template_name = "api/swagger_ui.html"


class RedocDocsView(SignInFirst, SpectacularRedocView):
    """Redoc: the same schema as one long, searchable reference page."""

    url_name = SCHEMA_URL_NAME
    template_name = "api/redoc.html"
