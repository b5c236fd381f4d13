"""Forms for managing accounts (admins only), and the password change form."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.forms import PasswordChangeForm, UserCreationForm
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from popcompliance.accounts.roles import ROLE_CHOICES, VIEWER, set_role


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
