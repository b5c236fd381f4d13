"""Forms for managing accounts (admins only)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.forms import UserCreationForm

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
