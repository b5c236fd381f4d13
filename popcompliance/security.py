"""The Content Security Policy of every HTML page.

No inline script, style or event handler anywhere: page behaviour lives in static/js (one file
per page), looks in static/css. `json_script` data blocks are fine (a browser never executes
them). A browser test (tests/test_browser.py) fails on any reported violation.

One page is relaxed, and only as far as it must be: the API reference drawn by Redoc (see
RELAXED_POLICIES). Swagger UI at /api/v1/docs/ passes the strict policy.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

DIRECTIVES = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "object-src": "'none'",
    "base-uri": "'self'",
    "frame-ancestors": "'none'",
    "form-action": "'self'",
}


def policy(directives: dict[str, str]) -> str:
    return "; ".join(f"{name} {sources}" for name, sources in directives.items())


CONTENT_SECURITY_POLICY = policy(DIRECTIVES)

# Redoc (/api/v1/redoc/, popcompliance.api.docs) styles itself with styled-components, which
# writes <style> elements at run time, and builds its search index in a Web Worker made from a
# blob: URL. Its bundle gives no way to hand either a nonce, so that page alone allows inline
# styles and blob: workers. Its scripts still come only from our own origin, and the page shows
# nothing but our own schema. Its sidebar also links Redocly's logo from cdn.redoc.ly: img-src
# stays 'self', so the browser refuses that one image (and reports it) and Redoc hides it.
REDOC_CONTENT_SECURITY_POLICY = policy(
    {**DIRECTIVES, "style-src": "'self' 'unsafe-inline'", "worker-src": "blob:"}
)

# The pages given a looser policy than CONTENT_SECURITY_POLICY, by URL name.
RELAXED_POLICIES = {"api:redoc": REDOC_CONTENT_SECURITY_POLICY}


class ContentSecurityPolicyMiddleware:
    """Adds CONTENT_SECURITY_POLICY (or the page's entry in RELAXED_POLICIES) to HTML
    responses that do not set a policy themselves."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        content_type = response.get("Content-Type", "")
        if content_type.startswith("text/html") and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = policy_for(request)
        return response


def policy_for(request: HttpRequest) -> str:
    match = request.resolver_match
    view_name = match.view_name if match is not None else ""
    return RELAXED_POLICIES.get(view_name, CONTENT_SECURITY_POLICY)
