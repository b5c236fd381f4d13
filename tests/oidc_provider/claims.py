"""The claims the test provider issues: a user's groups there are their roles, both as a
top-level `roles` claim (as Entra ID sends app roles) and nested in `realm_access.roles` (as
Keycloak sends realm roles)."""

from typing import Any

from oauth2_provider.oauth2_validators import OAuth2Validator


class RolesValidator(OAuth2Validator):
    oidc_claim_scope = {
        **OAuth2Validator.oidc_claim_scope,
        "roles": "profile",
        "realm_access": "profile",
    }

    def get_additional_claims(self, request: Any) -> dict[str, Any]:
        user = request.user
        roles = sorted(user.groups.values_list("name", flat=True))
        return {
            "preferred_username": user.username,
            "email": user.email,
            "given_name": user.first_name,
            "family_name": user.last_name,
            "roles": roles,
            "realm_access": {"roles": roles},
        }
