"""What the OpenAPI schema says beyond what drf-spectacular reads from the code: how to send
the token, the shape of errors, and an example server. views.py attaches them to operations.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, inline_serializer
from rest_framework import serializers


class TokenScheme(OpenApiAuthenticationExtension):
    """Our hashed tokens (popcompliance.api.authentication), described for people."""

    target_class = "popcompliance.api.authentication.HashedTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": (
                "`Authorization: Token <key>`, the word Token included. Create a key on your "
                "API tokens page in the dashboard (or an admin runs `manage.py "
                "create_api_token USERNAME`); it carries that user's role and expires as it "
                "says there."
            ),
        }


QUEUE_UNAVAILABLE = "The task queue is unreachable; try again later."
ALERT_RESOLVED = "The alert is resolved: nothing to acknowledge."

ERROR = inline_serializer("Error", {"detail": serializers.CharField()})

# Each error status: what it means, and a typical `detail` as the API words it.
ERROR_DETAILS = {
    401: ("No valid token or session.", "Authentication credentials were not provided."),
    403: ("The account's role does not allow this.", "This needs the Operator role."),
    404: ("No such object.", "No Server matches the given query."),
    409: ("The alert is resolved already.", ALERT_RESOLVED),
    429: (
        "Too many scan requests from this account this minute: nothing was queued.",
        f"Too many scan requests: at most {settings.POPC_SCAN_REQUESTS_PER_MINUTE} a minute. "
        "Wait a minute and try again.",
    ),
    503: ("The task queue is unreachable: nothing was queued.", QUEUE_UNAVAILABLE),
}

INVALID_INPUT = OpenApiResponse(
    inline_serializer(
        "ValidationError",
        {"field": serializers.ListField(child=serializers.CharField())},
    ),
    description="Invalid input or query parameter: messages under each field's name.",
    examples=[
        OpenApiExample(
            "A refused host",
            value={
                "host": [
                    "169.254.169.254 is refused by the scanner guard: it is in 169.254.0.0/16, "
                    "where the scanner never connects"
                ]
            },
        ),
        OpenApiExample(
            "An unknown filter value", value={"status": ['"up" is not a valid choice.']}
        ),
    ],
)


def errors(*statuses: int) -> dict[int, OpenApiResponse]:
    """The documented error responses of an operation, by status, each with an example."""
    responses = {}
    for status in statuses:
        if status == 400:
            responses[status] = INVALID_INPUT
            continue
        meaning, detail = ERROR_DETAILS[status]
        example = OpenApiExample(f"{status}", value={"detail": detail})
        responses[status] = OpenApiResponse(ERROR, description=meaning, examples=[example])
    return responses


SERVER_EXAMPLE = OpenApiExample(
    "A server with plain-text login allowed",
    response_only=True,
    value={
        "id": 7,
        "name": "cas02-london",
        "host": "cas02.corp.example.com",
        "service_name": "mail.example.com",
        "protocols": ["pop3"],
        "status": "non_compliant",
        "compliant": False,
        "last_scan_at": "2026-03-02T09:14:05Z",
        "checks": {
            "cert.name": "pass",
            "cert.revocation": "pass",
            "cert.strength": "pass",
            "cert.trusted": "pass",
            "cert.validity": "warn",
            "pop3.plaintext_login": "fail",
            "pop3.stls": "pass",
            "pop3s.available": "pass",
            "tls.protocols": "pass",
        },
    },
)
