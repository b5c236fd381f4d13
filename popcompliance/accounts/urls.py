"""Sign-in (local, LDAP, OpenID Connect), sign-out, password change and account management."""

from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy

from popcompliance.accounts import oidc, tokens, views

app_name = "accounts"

urlpatterns = [
    path("login/", views.SignInView.as_view(), name="login"),
    # OpenID Connect (404 unless configured): the button's target, and the redirect URI to
    # register at the provider.
    path("oidc/login/", oidc.OidcLoginView.as_view(), name="oidc_login"),
    path("oidc/callback/", oidc.OidcCallbackView.as_view(), name="oidc_callback"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "password/",
        views.PasswordChangeView.as_view(success_url=reverse_lazy("accounts:password_change_done")),
        name="password_change",
    ),
    path(
        "password/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("users/", views.users, name="users"),
    path("users/add/", views.user_add, name="user_add"),
    path("users/<int:pk>/role/", views.user_role, name="user_role"),
    path("users/<int:pk>/unlock/", views.user_unlock, name="user_unlock"),
    path("users/unlock-address/", views.address_unlock, name="address_unlock"),
    path("tokens/", tokens.api_tokens, name="api_tokens"),
    path("tokens/new/", tokens.api_token_create, name="api_token_create"),
    path("tokens/<int:pk>/revoke/", tokens.api_token_revoke, name="api_token_revoke"),
]
