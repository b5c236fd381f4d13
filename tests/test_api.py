"""The JSON API (popcompliance.api): token auth, roles, the list contract and its query count,
scans, alerts, the fleet summary, the schema and `create_api_token`. The cast: a viewer, an
operator and an admin, each with a token; and an anonymous client."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone
from rest_framework.test import APIClient

import scanner
from popcompliance.alerts.models import Alert
from popcompliance.audit.models import AuditEntry
from popcompliance.compliance.models import Change, CheckState
from popcompliance.inventory.models import PORT_FIELDS, Server, Tag
from tests.people import make_user, token_for
from tests.services import RedisServer, queued_tasks

pytestmark = pytest.mark.django_db

SERVERS = "/api/v1/servers/"
ALERTS = "/api/v1/alerts/"
MANUAL = {"purpose": "manual"}


def client_as(role: str) -> APIClient:
    """A client authenticated by the token of a new user with `role`."""
    user = make_user(role)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}")
    return client


@pytest.fixture
def viewer() -> APIClient:
    return client_as("viewer")


@pytest.fixture
def operator() -> APIClient:
    return client_as("operator")


@pytest.fixture
def admin() -> APIClient:
    return client_as("admin")


def make_server(name: str, status: str = "compliant", **fields: object) -> Server:
    """A server whose checks pass on one address, except those in `failing` (fail there)."""
    failing = fields.pop("failing", ())
    now = timezone.now()
    server = Server.objects.create(name=name, host=f"{name}.example.com", status=status, **fields)
    for address in ("192.0.2.1", "192.0.2.2"):
        CheckState.objects.bulk_create(
            CheckState(
                server=server,
                address=address,
                check_id=check_id,
                status="fail" if check_id in failing and address.endswith("2") else "pass",
                summary=check_id,
                since=now,
            )
            for check_id in scanner.ADDRESS_CHECK_IDS
        )
    return server


def queued_task_ids(redis_broker: RedisServer) -> list[str]:
    """The Celery task id of each message waiting in the default queue, oldest first."""
    with redis_broker.client() as client:
        raw = client.lrange("celery", 0, -1)
    return [json.loads(item)["headers"]["id"] for item in reversed(raw)]


def make_alert(server: Server, check_id: str, **fields: object) -> Alert:
    now = timezone.now()
    return Alert.objects.create(
        server=server, check_id=check_id, status="fail", summary="bad", opened_at=now, **fields
    )


def test_it_answers_401_without_a_token() -> None:
    response = APIClient().get(SERVERS)
    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}
    assert response["WWW-Authenticate"] == "Token"


def test_it_answers_401_for_a_wrong_token() -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token nope")
    assert client.get(SERVERS).status_code == 401


def test_the_list_has_the_contract_shape(viewer: APIClient) -> None:
    check_id = scanner.ADDRESS_CHECK_IDS[0]
    bad = make_server("bad", "non_compliant", failing=(check_id,))
    make_server("new-one", "new")
    body = viewer.get(SERVERS).json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 2
    first = body["results"][0]
    assert set(first) == {
        "id",
        "name",
        "host",
        "service_name",
        "protocols",
        "status",
        "compliant",
        "last_scan_at",
        "checks",
    }
    assert first["protocols"] == ["pop3"]
    assert (first["id"], first["compliant"]) == (bad.pk, False)
    assert first["checks"][check_id] == "fail"  # the worst over both addresses
    assert body["results"][1]["compliant"] is None


def test_the_list_runs_a_fixed_number_of_queries(viewer: APIClient, django_assert_num_queries):
    for n in range(6):
        make_server(f"s{n}", failing=scanner.ADDRESS_CHECK_IDS[:n])
    viewer.get(SERVERS)  # the token's first use is written once, and not again for minutes
    # The token with its user, the count, the page of servers, their check states, the
    # waivers in force over the page.
    with django_assert_num_queries(5):
        assert len(viewer.get(SERVERS).json()["results"]) == 6


def test_the_list_filters(viewer: APIClient) -> None:
    make_server("alpha", "compliant", site="paris").tags.add(Tag.objects.create(name="edge"))
    make_server("beta", "non_compliant", site="oslo")
    names = lambda query: [s["name"] for s in viewer.get(SERVERS + query).json()["results"]]  # noqa: E731
    assert names("?status=non_compliant") == ["beta"]
    assert names("?site=paris") == ["alpha"]
    assert names("?tag=edge") == ["alpha"]
    assert names("?search=ALP") == ["alpha"]
    assert viewer.get(SERVERS + "?status=bogus").status_code == 400


def test_the_detail_shows_checks_and_history(viewer: APIClient) -> None:
    server = make_server("alpha")
    Change.objects.create(
        server=server, check_id="x", status="fail", summary="s", created_at=timezone.now()
    )
    body = viewer.get(f"{SERVERS}{server.pk}/").json()
    assert len(body["check_states"]) == 2 * len(scanner.ADDRESS_CHECK_IDS)
    assert {"id", "status", "summary", "remediation", "address", "since"} <= set(
        body["check_states"][0]
    )
    assert [c["check_id"] for c in body["history"]] == ["x"]
    assert body["certificates"] == [] and body["addresses"] == []
    assert body["tls_profile"] == "mozilla-intermediate"


def test_the_detail_names_the_tls_profile_of_the_servers_policy(viewer: APIClient) -> None:
    server = make_server("alpha")
    server.policy.tls_profile = "bsi-tr-02102-2"
    server.policy.save()
    assert viewer.get(f"{SERVERS}{server.pk}/").json()["tls_profile"] == "bsi-tr-02102-2"


def test_an_unknown_server_is_a_json_404(viewer: APIClient) -> None:
    response = viewer.get(f"{SERVERS}999999/")
    assert response.status_code == 404
    assert "detail" in response.json()


def test_a_viewer_cannot_write(viewer: APIClient) -> None:
    server = make_server("alpha")
    assert viewer.post(SERVERS, {"name": "n", "host": "h.example.com"}).status_code == 403
    assert viewer.post(f"{SERVERS}{server.pk}/scan/").status_code == 403
    assert viewer.patch(f"{SERVERS}{server.pk}/", {"site": "x"}).status_code == 403
    assert Server.objects.count() == 1


def test_an_operator_queues_a_manual_scan_on_the_broker(
    transactional_db: None, redis_broker: RedisServer, operator: APIClient
) -> None:
    server = make_server("alpha")
    response = operator.post(f"{SERVERS}{server.pk}/scan/")
    assert response.status_code == 202
    body = response.json()
    assert body == {
        "task_id": body["task_id"],
        "server": server.pk,
        "purpose": "manual",
        "joined": False,
        "detail": "Scan queued.",
    }
    assert queued_tasks(redis_broker) == [("compliance.scan_server", [server.pk], MANUAL)]
    assert queued_task_ids(redis_broker) == [body["task_id"]]


def test_a_scan_requested_inside_a_transaction_is_sent_when_it_commits(
    transactional_db: None, redis_broker: RedisServer, operator: APIClient
) -> None:
    server = make_server("alpha")
    with transaction.atomic():
        assert operator.post(f"{SERVERS}{server.pk}/scan/").status_code == 202
        assert queued_tasks(redis_broker) == []
    assert queued_tasks(redis_broker) == [("compliance.scan_server", [server.pk], MANUAL)]


def test_a_scan_while_the_queue_is_down_is_a_json_503(
    transactional_db: None, redis_broker: RedisServer, operator: APIClient
) -> None:
    server = make_server("alpha")
    redis_broker.stop()
    try:
        response = operator.post(f"{SERVERS}{server.pk}/scan/")
    finally:
        redis_broker.start()
    assert response.status_code == 503
    assert response.json() == {"detail": "The task queue is unreachable; try again later."}
    assert queued_tasks(redis_broker) == []


def test_a_scan_requested_while_one_is_queued_joins_it(
    transactional_db: None, redis_broker: RedisServer, operator: APIClient
) -> None:
    server = make_server("alpha")
    first = operator.post(f"{SERVERS}{server.pk}/scan/").json()
    responses = [operator.post(f"{SERVERS}{server.pk}/scan/") for _ in range(3)]
    assert [r.status_code for r in responses] == [202] * 3
    assert responses[0].json() == {
        "task_id": "",
        "server": server.pk,
        "purpose": "manual",
        "joined": True,
        "detail": "A scan of this server is already queued or running; your request joins it.",
    }
    assert queued_task_ids(redis_broker) == [first["task_id"]]  # one scan for four requests


def test_scan_requests_past_the_rate_limit_are_a_json_429(
    transactional_db: None, redis_broker: RedisServer, operator: APIClient, settings
) -> None:
    settings.POPC_SCAN_REQUESTS_PER_MINUTE = 3
    servers = [make_server(f"s{i}") for i in range(4)]
    codes = [operator.post(f"{SERVERS}{s.pk}/scan/").status_code for s in servers]
    assert codes == [202, 202, 202, 429]
    response = operator.post(f"{SERVERS}{servers[3].pk}/scan/")
    assert response.json() == {
        "detail": "Too many scan requests: at most 3 a minute. Wait a minute and try again."
    }
    assert sorted(args[0] for _, args, _ in queued_tasks(redis_broker)) == [
        s.pk for s in servers[:3]
    ]
    # The limit is the person's: another operator is not held back.
    other = APIClient()
    token = token_for(make_user("operator", "operator-2"))
    other.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert other.post(f"{SERVERS}{servers[3].pk}/scan/").status_code == 202


def test_an_operator_cannot_create_or_pause(operator: APIClient) -> None:
    server = make_server("alpha")
    assert operator.post(SERVERS, {"name": "n", "host": "h.example.com"}).status_code == 403
    assert operator.post(f"{SERVERS}{server.pk}/pause/").status_code == 403


def test_scan_is_post_only(operator: APIClient) -> None:
    server = make_server("alpha")
    assert operator.get(f"{SERVERS}{server.pk}/scan/").status_code == 405
    assert operator.delete(f"{SERVERS}{server.pk}/").status_code == 405


def test_an_admin_creates_a_server(admin: APIClient) -> None:
    data = {
        "name": "new",
        "host": "pop.example.com",
        "tags": ["edge"],
        "owner_emails": ["ops@example.com"],
    }
    response = admin.post(SERVERS, data, format="json")
    assert response.status_code == 201, response.json()
    server = Server.objects.get(name="new")
    assert response.json()["id"] == server.pk
    assert [t.name for t in server.tags.all()] == ["edge"]


def test_invalid_input_is_400_with_field_messages(admin: APIClient) -> None:
    make_server("taken")
    data = {"name": "taken", "host": "pop.example.com", "pop3_port": 0, "owner_emails": ["x"]}
    response = admin.post(SERVERS, data, format="json")
    assert response.status_code == 400
    assert {"name", "pop3_port", "owner_emails"} <= set(response.json())


def test_an_admin_updates_pauses_and_resumes(admin: APIClient) -> None:
    server = make_server("alpha")
    assert admin.patch(f"{SERVERS}{server.pk}/", {"site": "oslo"}).json()["site"] == "oslo"
    assert admin.post(f"{SERVERS}{server.pk}/pause/").json()["status"] == "paused"
    assert admin.post(f"{SERVERS}{server.pk}/resume/").json()["status"] == "new"
    server.refresh_from_db()
    assert (server.site, server.paused) == ("oslo", False)


T0 = timezone.make_aware(timezone.datetime(2026, 3, 2, 9, 0))


@pytest.mark.parametrize(
    ("due_in", "new_interval", "expected_due_in"),
    [
        (1440, 60, 60),  # shorter: the next scan comes forward to one new interval from now
        (30, 60, 30),  # already sooner than that: kept
        (60, 60, 60),  # unchanged interval
        (1440, 2880, 1440),  # longer: the scan already planned still happens
    ],
)
@time_machine.travel(T0, tick=False)
def test_a_new_interval_reschedules_like_the_form(
    admin: APIClient, due_in: int, new_interval: int, expected_due_in: int
) -> None:
    server = make_server("alpha", scan_interval=1440, next_scan_at=T0 + minutes(due_in))
    response = admin.patch(f"{SERVERS}{server.pk}/", {"scan_interval": new_interval})
    assert response.status_code == 200, response.json()
    server.refresh_from_db()
    assert server.next_scan_at == T0 + minutes(expected_due_in)


@time_machine.travel(T0, tick=False)
def test_a_new_host_through_the_api_is_scanned_now(admin: APIClient) -> None:
    server = make_server("alpha", next_scan_at=T0 + minutes(60))
    admin.patch(f"{SERVERS}{server.pk}/", {"host": "pop9.example.com", "scan_interval": 5})
    server.refresh_from_db()
    assert server.next_scan_at == T0


def minutes(count: int) -> timedelta:
    return timedelta(minutes=count)


# Protocols and their ports.


def test_an_admin_creates_a_server_with_protocols_and_their_ports(admin: APIClient) -> None:
    data = {
        "name": "new",
        "host": "mail.example.com",
        "protocols": ["submission", "IMAP", "imap"],
        "imap_port": 1143,
        "submissions_port": 2465,
    }
    response = admin.post(SERVERS, data, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["protocols"] == ["imap", "submission"]  # the catalog's order, no repeats
    ports = {field: body[field] for field in PORT_FIELDS}
    assert ports == {
        "pop3_port": 110,
        "pop3s_port": 995,
        "imap_port": 1143,
        "imaps_port": 993,
        "submission_port": 587,
        "submissions_port": 2465,
    }
    target = Server.objects.get(name="new").as_target()
    assert (target.protocols, target.ports(scanner.PROTOCOL_BY_NAME["imap"])) == (
        ("imap", "submission"),
        (1143, 993),
    )


def test_a_server_created_without_protocols_serves_pop3(admin: APIClient, viewer: APIClient):
    response = admin.post(SERVERS, {"name": "old", "host": "pop.example.com"}, format="json")
    assert response.json()["protocols"] == ["pop3"]
    detail = viewer.get(f"{SERVERS}{response.json()['id']}/").json()
    assert (detail["protocols"], detail["imap_port"], detail["submission_port"]) == (
        ["pop3"],
        143,
        587,
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("protocols", ["pop3", "ftp"], "unknown protocol ftp (known: pop3, imap, submission)"),
        ("protocols", [], "at least one protocol is needed (pop3, imap, submission)"),
        ("protocols", "pop3,imap", 'Expected a list of protocol names, such as ["pop3", "imap"].'),
        ("protocols", [1], 'Expected a list of protocol names, such as ["pop3", "imap"].'),
        ("protocols", None, "This field may not be null."),
        ("imap_port", 0, "Ensure this value is greater than or equal to 1."),
        ("submissions_port", 65536, "Ensure this value is less than or equal to 65535."),
        ("imaps_port", "993x", "A valid integer is required."),
    ],
)
def test_bad_protocols_or_ports_are_400_under_their_field(
    admin: APIClient, field: str, value: object, message: str
) -> None:
    data = {"name": "new", "host": "mail.example.com", field: value}
    response = admin.post(SERVERS, data, format="json")
    assert (response.status_code, response.json()) == (400, {field: [message]})
    server = make_server("alpha")
    response = admin.patch(f"{SERVERS}{server.pk}/", {field: value}, format="json")
    assert (response.status_code, response.json()) == (400, {field: [message]})
    server.refresh_from_db()
    assert (server.protocols, server.imap_port) == ("pop3", 143)


@pytest.mark.parametrize(
    "change",
    [{"protocols": ["pop3", "imap"]}, {"imaps_port": 1993}, {"submission_port": 2587}],
)
@time_machine.travel(T0, tick=False)
def test_new_protocols_or_ports_through_the_api_are_scanned_now(
    admin: APIClient, change: dict[str, object]
) -> None:
    server = make_server("alpha", next_scan_at=T0 + minutes(60))
    response = admin.patch(f"{SERVERS}{server.pk}/", change, format="json")
    assert response.status_code == 200, response.json()
    server.refresh_from_db()
    assert server.next_scan_at == T0
    assert {key: response.json()[key] for key in change} == change


@time_machine.travel(T0, tick=False)
def test_the_same_protocols_in_another_order_change_nothing(admin: APIClient) -> None:
    server = make_server("alpha", protocols="pop3,imap", next_scan_at=T0 + minutes(60))
    patch = {"protocols": ["imap", "pop3"]}
    assert admin.patch(f"{SERVERS}{server.pk}/", patch, format="json").status_code == 200
    server.refresh_from_db()
    assert (server.protocols, server.next_scan_at) == ("pop3,imap", T0 + minutes(60))
    assert not AuditEntry.objects.filter(object_type="server", action="changed").exists()


def test_an_api_edit_of_protocols_is_audited(admin: APIClient) -> None:
    server = make_server("alpha")
    patch = {"protocols": ["pop3", "submission"], "submission_port": 2587}
    admin.patch(f"{SERVERS}{server.pk}/", patch, format="json")
    entry = AuditEntry.objects.get(object_type="server", action="changed")
    assert entry.changes == {
        "protocols": ["pop3", "pop3,submission"],
        "submission port": [587, 2587],
    }


def test_alerts_filter_by_state(viewer: APIClient) -> None:
    server = make_server("alpha")
    now = timezone.now()
    open_ = make_alert(server, "a")
    acked = make_alert(server, "b", acknowledged_at=now)
    resolved = make_alert(server, "c", resolved_at=now)
    ids = lambda state: [a["id"] for a in viewer.get(f"{ALERTS}?state={state}").json()["results"]]  # noqa: E731
    assert ids("open") == [open_.pk]
    assert ids("acknowledged") == [acked.pk]
    assert ids("resolved") == [resolved.pk]
    assert viewer.get(f"{ALERTS}?state=nope").status_code == 400


def test_an_operator_acknowledges_an_alert(operator: APIClient, viewer: APIClient) -> None:
    alert = make_alert(make_server("alpha"), "a")
    url = f"{ALERTS}{alert.pk}/acknowledge/"
    assert viewer.post(url, {"comment": "mine"}).status_code == 403
    assert operator.post(url, {}).json() == {"comment": ["This field is required."]}
    past = (timezone.now() - timedelta(hours=1)).isoformat()
    assert "until" in operator.post(url, {"comment": "x", "until": past}).json()
    response = operator.post(url, {"comment": "on it"})
    assert response.status_code == 200
    assert response.json()["state"] == "acknowledged"
    alert.refresh_from_db()
    assert (alert.ack_comment, alert.acknowledged_by.username) == ("on it", "operator-user")


def test_a_resolved_alert_cannot_be_acknowledged(operator: APIClient) -> None:
    alert = make_alert(make_server("alpha"), "a", resolved_at=timezone.now())
    assert operator.post(f"{ALERTS}{alert.pk}/acknowledge/", {"comment": "x"}).status_code == 409


def test_the_summary_counts_the_fleet(viewer: APIClient) -> None:
    check_id = scanner.ADDRESS_CHECK_IDS[0]
    make_server("a", "non_compliant", failing=(check_id,))
    make_server("b")
    body = viewer.get("/api/v1/summary/").json()
    assert (body["total"], body["by_status"]["compliant"]) == (2, 1)
    assert body["failing_checks"] == {check_id: 1}


def test_the_schema_generates_without_warnings() -> None:
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=StringIO())


def test_the_schema_is_served(viewer: APIClient) -> None:
    response = viewer.get("/api/v1/schema/?format=json")
    assert response.status_code == 200
    assert "/api/v1/servers/{id}/scan/" in response.json()["paths"]


def test_create_api_token_prints_a_working_token() -> None:
    User.objects.create_user("ops")
    out = StringIO()
    call_command("create_api_token", "ops", stdout=out)
    token = out.getvalue().strip()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get(SERVERS).status_code == 200
    # Only its digest is stored: another run prints another token, and both work.
    again = StringIO()
    call_command("create_api_token", "ops", stdout=again)
    assert again.getvalue().strip() != token
    client.credentials(HTTP_AUTHORIZATION=f"Token {again.getvalue().strip()}")
    assert client.get(SERVERS).status_code == 200
