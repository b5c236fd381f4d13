"""The dashboard's rules over statuses, all read from the scanner's one order (STATUS_RANK,
PASSING, compliance_of): regressions, a server's status, the level an alert opens at, and the
API's worst status per check. Unsaved rows; no database."""

from __future__ import annotations

import pytest

from popcompliance.alerts.lifecycle import worst_alerting
from popcompliance.api.serializers import worst_checks
from popcompliance.compliance.models import CheckState, is_regression
from popcompliance.compliance.recording import settled_status
from popcompliance.inventory.models import Policy, ServerStatus


def states(*statuses: str, check_id: str = "pop3.stls") -> list[CheckState]:
    return [CheckState(check_id=check_id, status=status) for status in statuses]


@pytest.mark.parametrize(
    ("previous", "status", "regressed"),
    [
        ("pass", "warn", True),
        ("skip", "fail", True),
        ("warn", "fail", True),
        ("skip", "pass", False),
        ("fail", "warn", False),
        ("warn", "warn", False),
        ("pass", "error", False),
        ("error", "fail", False),
        ("", "fail", False),
    ],
)
def test_a_regression_is_a_judged_status_getting_worse(
    previous: str, status: str, regressed: bool
) -> None:
    assert is_regression(previous, status) is regressed


@pytest.mark.parametrize(
    ("statuses", "server_status"),
    [
        ((), ServerStatus.UNKNOWN),
        (("pass", "skip", "warn"), ServerStatus.COMPLIANT),
        (("pass", "error"), ServerStatus.UNKNOWN),
        (("error", "fail"), ServerStatus.NON_COMPLIANT),
    ],
)
def test_a_servers_status_is_judged_as_the_scanner_judges_a_report(
    statuses: tuple[str, ...], server_status: str
) -> None:
    assert settled_status(states(*statuses)) == server_status


def test_an_alert_opens_at_the_worst_status_that_alerts_under_the_policy() -> None:
    mixed = states("warn", "error", "pass")
    assert worst_alerting(mixed, Policy(alert_on_warn=True)) == "warn"
    assert worst_alerting(mixed, Policy(alert_on_warn=False)) is None
    assert worst_alerting([*mixed, *states("fail")], Policy(alert_on_warn=True)) == "fail"


def test_the_api_gives_each_check_its_worst_status_over_the_addresses() -> None:
    found = [*states("pass", "error", "warn"), *states("skip", "pass", check_id="dns.srv")]
    assert worst_checks(found) == {"dns.srv": "pass", "pop3.stls": "error"}
