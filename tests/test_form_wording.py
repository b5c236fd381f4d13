"""The server form's wording: one error per mistake, help that fits what is stored, and
required fields marked."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from django.utils import timezone

from popcompliance.inventory.forms import NO_STORED_PASSWORD_HELP
from popcompliance.inventory.models import Server
from tests.test_inventory_views import server_form

pytestmark = pytest.mark.django_db

KEEP_STORED = "Leave blank to keep the stored password."


def test_an_empty_host_gives_one_error(admin):
    response = admin.post(reverse("inventory:server_add"), server_form(host=""))
    assert response.context["form"].errors["host"] == ["This field is required."]
    assert not Server.objects.exists()


def test_a_new_servers_password_help_does_not_mention_a_stored_password(admin):
    html = admin.get(reverse("inventory:server_add")).content.decode()
    assert NO_STORED_PASSWORD_HELP in html
    assert KEEP_STORED not in html


def test_a_server_with_a_stored_password_says_blank_keeps_it(admin):
    server = Server.objects.create(name="mail01", host="pop.example.com")
    server.set_monitoring_account("probe", "s3cret", timezone.now())
    server.save()
    html = admin.get(reverse("inventory:server_edit", args=[server.pk])).content.decode()
    assert KEEP_STORED in html
    assert NO_STORED_PASSWORD_HELP not in html


def test_required_fields_are_marked_and_optional_ones_are_not(admin):
    html = admin.get(reverse("inventory:server_add")).content.decode()
    marked = re.findall(r'<label for="id_(\w+)">[^<]*</label> <span class="required-mark"', html)
    assert {"name", "host", "pop3_port", "pop3s_port"} <= set(marked)
    assert not {"site", "owners", "monitor_password"} & set(marked)
