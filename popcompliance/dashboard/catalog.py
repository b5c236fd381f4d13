"""How statuses are shown: labels, symbols and colours, declared once. What each check is
called, asks and ranks comes from the scanner's catalog (scanner.CATALOG, scanner.STATUS_RANK).

Every status is shown as a word or a symbol beside its colour, never by colour alone: the
symbols differ in shape so they read in greyscale and for colour-blind users.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from django.utils.html import format_html
from django.utils.safestring import SafeString

from popcompliance.compliance.models import CHECK_COLOURS
from popcompliance.inventory.models import STATUS_COLOURS, ServerStatus

CHECK_SYMBOLS = {"pass": "✓", "warn": "!", "fail": "✗", "error": "?", "skip": "–"}
CHECK_WORDS = {"pass": "pass", "warn": "warn", "fail": "fail", "error": "error", "skip": "skip"}

SERVER_SYMBOLS = {
    ServerStatus.NEW: "•",
    ServerStatus.COMPLIANT: "✓",
    ServerStatus.NON_COMPLIANT: "✗",
    ServerStatus.UNKNOWN: "?",
    ServerStatus.PAUSED: "‖",
}
# Worst first: the order "sort by status" and the overview counts use.
SERVER_STATUS_ORDER = [
    ServerStatus.NON_COMPLIANT,
    ServerStatus.UNKNOWN,
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
    if not status or status not in CHECK_COLOURS:
        return NOT_SCANNED
    return Badge(CHECK_COLOURS[status], CHECK_SYMBOLS[status], CHECK_WORDS[status])


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
    note = format_html(" <small>(confirming a change)</small>") if confirming else ""
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
