"""The provider's endpoints under /o/ (discovery, authorize, token, userinfo, JWKS) and its
login page."""

from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
    path("login/", auth_views.LoginView.as_view(), name="login"),
]
