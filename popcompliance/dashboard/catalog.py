"""How statuses are shown: labels, symbols and colours, declared once. What each check is
called, asks and ranks comes from the scanner's catalog (scanner.CATALOG, scanner.STATUS_RANK).

Every status is shown as a word or a symbol beside its colour, never by colour alone: the
symbols differ in shape so they read in greyscale and for colour-blind users.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Collection
from dataclasses import dataclass

from django.utils.html import format_html
from django.utils.safestring import SafeString

import scanner
from popcompliance.compliance.models import CHECK_COLOURS
from popcompliance.inventory.models import STATUS_COLOURS, ServerStatus
from popcompliance.waivers.effect import EXCEPTED

# `excepted` is no stored status: a waiver in force shows a fail or warn so
# (popcompliance.waivers.effect).
CHECK_SYMBOLS = {"pass": "✓", "warn": "!", "fail": "✗", "error": "?", "skip": "–", EXCEPTED: "◇"}
CHECK_WORDS = {
    "pass": "pass",
    "warn": "warn",
    "fail": "fail",
    "error": "error",
    "skip": "skip",
    EXCEPTED: "excepted",
}
SHOWN_COLOURS = {**CHECK_COLOURS, EXCEPTED: "blue"}

SERVER_SYMBOLS = {
    ServerStatus.NEW: "•",
    ServerStatus.COMPLIANT: "✓",
    ServerStatus.NON_COMPLIANT: "✗",
    ServerStatus.EXCEPTED: "◇",
    ServerStatus.UNKNOWN: "?",
    ServerStatus.PAUSED: "‖",
}
# Worst first: the order "sort by status" and the overview counts use. An excepted server
# fails checks someone accepted: better than unknown, worse than never scanned or compliant.
SERVER_STATUS_ORDER = [
    ServerStatus.NON_COMPLIANT,
    ServerStatus.UNKNOWN,
    ServerStatus.EXCEPTED,
    ServerStatus.NEW,
    ServerStatus.COMPLIANT,
    ServerStatus.PAUSED,
]


@dataclass(frozen=True)
class Badge:
    """What a template needs to draw a status: colour class, symbol and word."""

    colour: str
    symbol: str
    word: str


NOT_SCANNED = Badge("none", "·", "not checked")


def check_badge(status: str | None) -> Badge:
    if not status or status not in SHOWN_COLOURS:
        return NOT_SCANNED
    return Badge(SHOWN_COLOURS[status], CHECK_SYMBOLS[status], CHECK_WORDS[status])


def server_badge(status: str) -> Badge:
    try:
        value = ServerStatus(status)
    except ValueError:
        return NOT_SCANNED
    return Badge(STATUS_COLOURS[value], SERVER_SYMBOLS[value], str(value.label))


@functools.cache
def badge_html(badge: Badge, confirming: bool = False) -> SafeString:
    """A status badge: the word beside the colour, the symbol hidden from screen readers.
    Built here, and cached, rather than by a template per badge: a page draws dozens of them,
    and there are only a few distinct ones."""
    note = format_html(" <small>{}</small>", "(confirming a change)") if confirming else ""
    return format_html(
        '<span class="badge badge-{}"><span class="symbol" aria-hidden="true">{}</span> {}{}'
        "</span>",
        badge.colour,
        badge.symbol,
        badge.word,
        note,
    )


@functools.cache
def cell_html(check_id: str, status: str | None, confirming: bool = False) -> SafeString:
    """A matrix cell: the symbol shows, the word is for screen readers and the tooltip.

    Built here, and cached, rather than by a template per cell: the overview's page has
    hundreds of cells, and there are only a few dozen distinct ones."""
    badge = check_badge(status)
    note = " (confirming a change)" if confirming else ""
    return format_html(
        '<td class="cell cell-{}" title="{}: {}{}"><span aria-hidden="true">{}{}</span>'
        '<span class="visually-hidden">{}{}</span></td>',
        badge.colour,
        check_id,
        badge.word,
        note,
        badge.symbol,
        "*" if confirming else "",
        badge.word,
        ", confirming a change" if confirming else "",
    )


@functools.cache
def not_declared_html(check_id: str, group: str) -> SafeString:
    """A matrix cell of a check whose protocol the server does not declare: not applicable,
    shown as a dash rather than a status colour (its stored state, if any, is stale)."""
    return format_html(
        '<td class="cell cell-na" title="{}: not applicable, {} is not declared for this '
        'server"><span aria-hidden="true">—</span><span class="visually-hidden">not applicable'
        "</span></td>",
        check_id,
        group,
    )


def applies(spec: scanner.CheckSpec, declared: Collection[str]) -> bool:
    """Whether `spec` judges a server declaring the protocol names `declared`: a check of one
    protocol only when it is declared (the scanner skips it otherwise), the others always."""
    return spec.protocol is None or spec.protocol in declared


@dataclass(frozen=True)
class CheckGroup:
    """A heading of the matrix and of the server page: the catalog's checks of one client
    protocol (`protocol` is its name) or of one family (`protocol` is None), in catalog order.
    `key` names it in anchors and templates: the protocol's name or the family (`tls`)."""

    name: str
    protocol: str | None
    key: str
    checks: tuple[scanner.CheckSpec, ...]

    def applies_to(self, declared: Collection[str]) -> bool:
        return applies(self.checks[0], declared)


def _check_groups() -> tuple[CheckGroup, ...]:
    """CATALOG cut at each change of CheckSpec.group; the catalog keeps a group's checks
    together (tests/test_catalog.py), so each group is headed once."""
    groups = []
    for name, specs in itertools.groupby(scanner.CATALOG, key=lambda spec: spec.group):
        checks = tuple(specs)
        protocol = checks[0].protocol
        key = protocol or checks[0].id.split(".")[0]
        groups.append(CheckGroup(name, protocol, key, checks))
    return tuple(groups)


CHECK_GROUPS = _check_groups()
# The checks behind "Accepts passwords in the clear", one per protocol that takes passwords.
CLEARTEXT_CHECKS = tuple(scanner.CHECKS[i] for i in scanner.CLEARTEXT_PASSWORD_CHECK_IDS)
CLEARTEXT_LABEL = "Accepts passwords in the clear"
