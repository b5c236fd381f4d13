"""Forms for managing accounts (admins only), and the password change form."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm, PasswordChangeForm, UserCreationForm
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from popcompliance.accounts.roles import ROLE_CHOICES, VIEWER, set_role
from popcompliance.accounts.sso import refusal_to_tell


class SignInForm(AuthenticationForm):
    """Django's sign-in form (local passwords and LDAP), which also says why a directory
    account whose password was right may not sign in (no role, a name taken here). A wrong
    password still gets Django's one message, whoever the username."""

    def clean(self) -> dict[str, Any]:
        try:
            return super().clean()  # type: ignore[no-any-return]
        except ValidationError:
            told = refusal_to_tell(self.request)
            if told:
                raise ValidationError(f"You cannot sign in: {told}.", code="refused") from None
            raise


class UserAddForm(UserCreationForm):  # type: ignore[type-arg]
    """A new account with its role."""

    email = forms.EmailField(required=False)
    role = forms.ChoiceField(choices=ROLE_CHOICES, initial=VIEWER)

    class Meta(UserCreationForm.Meta):
        fields = ("username", "email")

    def save(self, commit: bool = True) -> Any:
        user = super().save(commit=True)
        set_role(user, self.cleaned_data["role"])
        return user


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=ROLE_CHOICES)


class AddressForm(forms.Form):
    """A client address to unlock."""

    address = forms.GenericIPAddressField()


class ThrottledPasswordChangeForm(PasswordChangeForm):
    """Django's, where a wrong current password counts as a failed sign-in of this account
    from this address (the login throttle, throttle.py): a stolen session cannot guess the
    password here, out of the sign-in form's reach."""

    def __init__(self, user: Any, *args: Any, request: HttpRequest, **kwargs: Any) -> None:
        super().__init__(user, *args, **kwargs)
        self.request = request

    def clean_old_password(self) -> str:
        try:
            return super().clean_old_password()  # type: ignore[no-any-return]
        except ValidationError:
            credentials = {"username": self.user.get_username()}
            user_login_failed.send(type(self), credentials=credentials, request=self.request)
            raise


class ApiTokenForm(forms.Form):
    """A new API token: what it is for, and how long it lasts."""

    name = forms.CharField(max_length=100, help_text="What will use it, e.g. the nightly report.")
    days = forms.IntegerField(
        min_value=0,
        max_value=3650,
        label="Expires after (days)",
        help_text="0: never expires.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["days"].initial = settings.POPC_API_TOKEN_DAYS
