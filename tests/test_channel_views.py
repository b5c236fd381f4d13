"""The alert channels' pages and API: admins only, the URL write-only (stored encrypted, shown
redacted, never sent back, not even after a failed submission), a bad URL refused with
Apprise's reason, the audit log recording that the URL changed but not what it is, the health
of each channel on the list, and the test message."""

from __future__ import annotations

from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from popcompliance.alerts.delivery import deliver_pending
from popcompliance.alerts.models import Channel, ChannelScope, Notification, NotificationKind
from popcompliance.audit.models import AuditEntry
from popcompliance.inventory import credentials
from popcompliance.inventory.models import Tag
from popcompliance.inventory.rekeying import move_channels_off_former_keys
from tests.people import make_user, token_for
from tests.services import queued_tasks

pytest_plugins = ["tests.webhook_sink"]

SECRET = "s3cr3t-webhook-token"
URL = f"jsons://hooks.example.test/hooks/{SECRET}?+X-Team=ops"
LIST = reverse("alerts:channel_list")
ADD = reverse("alerts:channel_add")
API = "/api/v1/channels/"


def form(**overrides: object) -> dict[str, object]:
    data = {"name": "ops", "url": URL, "scope": "global", "tag": "", "owner_email": ""}
    data |= {"enabled": "on"}
    return {key: value for key, value in (data | overrides).items() if value is not None}


def stored(name: str = "ops", url: str = URL, **scope: object) -> Channel:
    channel = Channel(name=name)
    channel.set_scope(str(scope.pop("scope", ChannelScope.GLOBAL)), **scope)  # type: ignore[arg-type]
    channel.set_url(url)
    channel.save()
    return channel


def api_as(role: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(make_user(role, f'api-{role}'))}")
    return client


# The pages.


@pytest.mark.django_db
def test_an_admin_adds_a_channel_whose_url_is_stored_encrypted_and_shown_redacted(admin):
    response = admin.post(ADD, form())
    assert response.status_code == 302 and response.url == LIST
    channel = Channel.objects.get()
    assert SECRET not in channel.url_encrypted
    assert credentials.decrypt(channel.url_encrypted) == URL
    assert channel.url_redacted == "jsons://hooks.example.test/…"
    assert channel.service == "JSON"
    page = admin.get(LIST).content.decode()
    assert "jsons://hooks.example.test/…" in page and SECRET not in page
    edit = admin.get(channel.get_absolute_url()).content.decode()
    assert SECRET not in edit and "Leave blank to keep the stored URL" in edit


@pytest.mark.django_db
def test_a_blank_url_keeps_the_stored_one_and_a_new_one_replaces_it(admin):
    channel = stored()
    admin.post(channel.get_absolute_url(), form(name="ops-renamed", url=""))
    channel.refresh_from_db()
    assert channel.name == "ops-renamed" and channel.url() == URL
    admin.post(channel.get_absolute_url(), form(url="https://hooks.slack.com/services/T0/B0/XYZW"))
    channel.refresh_from_db()
    assert channel.service == "Slack" and channel.url_redacted == "https://hooks.slack.com/…"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "error"),
    [
        (f"nosuch://{SECRET}", "Apprise does not accept this URL"),
        (f"json://bob:{SECRET}@hooks.example.test/x", "use jsons:// (HTTPS)"),
        ("", "Give the channel&#x27;s Apprise URL."),
    ],
)
def test_a_url_apprise_refuses_is_not_saved_and_not_sent_back(admin, url, error):
    response = admin.post(ADD, form(url=url))
    page = response.content.decode()
    assert response.status_code == 200 and error in page
    assert not Channel.objects.exists()
    assert SECRET not in page


@pytest.mark.django_db
def test_a_tag_or_owner_scope_needs_its_target(admin):
    page = admin.post(ADD, form(scope="tag")).content.decode()
    assert "Choose the tag whose servers this channel hears about." in page
    page = admin.post(ADD, form(scope="owner")).content.decode()
    assert "Give the owner whose servers this channel hears about." in page
    tag = Tag.objects.create(name="paris")
    admin.post(ADD, form(scope="owner", owner_email="Alice@Example.TEST", tag=tag.pk))
    channel = Channel.objects.get()
    # Only the scope's own target is kept, in lower case.
    assert (channel.scope, channel.tag, channel.owner_email) == (
        "owner",
        None,
        "alice@example.test",
    )


@pytest.mark.django_db
def test_only_admins_see_or_change_channels(viewer, operator, client):
    channel = stored()
    urls = [
        LIST,
        ADD,
        channel.get_absolute_url(),
        reverse("alerts:channel_delete", args=[channel.pk]),
    ]
    for url in urls:
        assert viewer.get(url).status_code == 403
        assert operator.get(url).status_code == 403
        assert client.get(url).status_code == 302  # to the login page
    assert operator.post(reverse("alerts:channel_test", args=[channel.pk])).status_code == 403
    assert Channel.objects.get().name == "ops"


@pytest.mark.django_db
def test_the_test_button_rejects_get(admin):
    channel = stored()
    assert admin.get(reverse("alerts:channel_test", args=[channel.pk])).status_code == 405


@pytest.mark.django_db
def test_deleting_a_channel_drops_its_waiting_messages(admin):
    channel = stored()
    Notification.objects.create(
        kind="alert", to="ops", subject="s", body_text="b", body_html="", key="k",
        message_id="<m@x>", channel=channel, created_at=timezone.now(),
        next_attempt_at=timezone.now(),
    )  # fmt: skip
    delete = reverse("alerts:channel_delete", args=[channel.pk])
    assert "1 message waiting for it will be dropped" in admin.get(delete).content.decode()
    assert admin.post(delete).status_code == 302
    assert not Channel.objects.exists() and not Notification.objects.exists()


@pytest.mark.django_db
def test_the_list_shows_a_refusal_and_waiting_messages_in_a_fixed_number_of_queries(admin):
    broken = stored("broken")
    broken.record_outcome("refused for good: HTTP 404 Not Found: no such hook", timezone.now())
    waiting = stored("waiting")
    for index in range(3):
        row = Notification.objects.create(
            kind="alert", to="waiting", subject="s", body_text="b", body_html="",
            key=f"k{index}", message_id=f"<m{index}@x>", channel=waiting,
            created_at=timezone.now(), next_attempt_at=timezone.now(),
        )  # fmt: skip
        row.record_failure("HTTP 503 Service Unavailable: busy", False, timezone.now(), 5)
    stored("quiet")
    with CaptureQueriesContext(connection) as three:
        page = admin.get(LIST).content.decode()
    assert "refused for good: HTTP 404 Not Found: no such hook" in page
    assert "3 waiting</span> HTTP 503 Service Unavailable: busy" in page
    assert "Nothing sent yet" in page
    for index in range(5):
        stored(f"more-{index}")
    with CaptureQueriesContext(connection) as eight:
        admin.get(LIST)
    assert len(eight) == len(three) <= 4  # session, user, groups, the channels


# The test message.


@pytest.mark.django_db(transaction=True)
def test_a_test_message_is_queued_handed_to_a_worker_and_delivered(
    admin, webhook_sink, redis_broker
):
    channel = stored(url=f"json://{webhook_sink.address}/hooks/{SECRET}")
    response = admin.post(reverse("alerts:channel_test", args=[channel.pk]), follow=True)
    assert "A test message to ops is queued" in response.content.decode()
    assert [name for name, _, _ in queued_tasks(redis_broker)] == ["alerts.deliver"]
    assert deliver_pending() == {"sent": 1}
    [request] = webhook_sink.received
    payload = request.json()
    assert payload["title"] == "[PopCompliance] Test message"
    assert "to the channel **ops**, sent by admin-user" in payload["message"]
    assert Notification.objects.get().kind == NotificationKind.TEST


# The audit log.


@pytest.mark.django_db
def test_the_audit_log_says_the_url_changed_never_what_it_is(admin):
    admin.post(ADD, form())
    channel = Channel.objects.get()
    admin.post(channel.get_absolute_url(), form(url=URL.replace(SECRET, "an0ther-token")))
    created, changed = AuditEntry.objects.filter(object_type="channel").order_by("at", "id")
    assert created.changes["URL"] == [None, "(set)"]
    assert changed.changes["URL"] == ["(set)", "(changed)"]
    assert SECRET not in str(created.changes) + str(changed.changes)
    assert "an0ther-token" not in str(changed.changes)


# The API.


@pytest.mark.django_db
def test_the_api_creates_a_channel_and_never_returns_its_url():
    admin = api_as("admin")
    response = admin.post(API, {"name": "ops", "url": URL, "scope": "global"}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert "url" not in body and SECRET not in str(body)
    assert body["url_redacted"] == "jsons://hooks.example.test/…" and body["service"] == "JSON"
    listed = admin.get(API).json()
    assert SECRET not in str(listed) and listed["results"][0]["name"] == "ops"


@pytest.mark.django_db
def test_the_api_keeps_the_url_when_an_update_omits_it_and_refuses_a_bad_one():
    admin = api_as("admin")
    channel = stored()
    Tag.objects.create(name="paris")
    detail = f"{API}{channel.pk}/"
    response = admin.patch(detail, {"scope": "tag", "tag": "paris"}, format="json")
    assert response.status_code == 200, response.json()
    channel.refresh_from_db()
    assert channel.url() == URL and channel.tag.name == "paris"
    refused = admin.patch(detail, {"url": f"nosuch://{SECRET}"}, format="json")
    assert refused.status_code == 400 and "Apprise does not accept" in refused.json()["url"][0]
    assert SECRET not in str(refused.json())
    assert admin.patch(detail, {"scope": "owner"}, format="json").status_code == 400


@pytest.mark.django_db
def test_the_api_refuses_channels_to_anyone_but_admins():
    stored()
    for role in ("viewer", "operator"):
        client = api_as(role)
        assert client.get(API).status_code == 403
        assert client.post(API, {"name": "x", "url": URL, "scope": "global"}).status_code == 403
    assert APIClient().get(API).status_code == 401


# The keys: channel URLs move with the monitoring passwords.


@pytest.mark.django_db
def test_key_rotation_and_a_new_key_move_the_channel_urls_too(settings, capsys):
    key_a, key_b = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.POPC_CREDENTIALS_KEY = []
    channel = stored()  # under the key derived from SECRET_KEY
    settings.POPC_CREDENTIALS_KEY = [key_a]
    move_channels_off_former_keys("default")
    assert "Moved 1 alert channel URL(s) to POPC_CREDENTIALS_KEY" in capsys.readouterr().out
    channel.refresh_from_db()
    assert Fernet(key_a).decrypt(channel.url_encrypted.encode()).decode() == URL
    settings.POPC_CREDENTIALS_KEY = [key_b, key_a]
    out = StringIO()
    call_command("rotate_credentials_key", stdout=out)
    assert "Re-encrypted 1 alert channel URL(s)" in out.getvalue()
    channel.refresh_from_db()
    assert Fernet(key_b).decrypt(channel.url_encrypted.encode()).decode() == URL
    settings.POPC_CREDENTIALS_KEY = [Fernet.generate_key().decode()]
    with pytest.raises(CommandError, match=r"the URL of 1 alert channel\(s\) \(set their URLs"):
        call_command("rotate_credentials_key", stdout=StringIO())
