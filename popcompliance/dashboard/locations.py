"""The server page's locations: each check's verdict from every location side by side, and the
facts that differ between them ("port 110 answers from dmz, not from external").

Pure functions over what detail.server_context already loaded (states, the latest facts of
each location): no query of their own.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import scanner
from popcompliance.compliance.models import CheckState, ScanRun
from popcompliance.compliance.recording import settled_status
from popcompliance.dashboard import facts as report
from popcompliance.locations import label

Json = dict[str, Any]


@dataclass(frozen=True)
class LocationColumn:
    """One location the server is probed from: its settled status there (judged as the
    server's, over that location's states), and its latest scan with facts."""

    name: str
    status: str
    run: ScanRun | None

    @property
    def label(self) -> str:
        return label(self.name)

    @property
    def scanned_at(self) -> datetime | None:
        return self.run.finished_at if self.run else None


@dataclass(frozen=True)
class LocationCell:
    """One check's worst verdict from one location (`where`: the location's label)."""

    where: str
    status: str | None
    confirming: bool
    summary: str


@dataclass(frozen=True)
class LocationRow:
    """One check: its worst verdict over the addresses from each location, in column order."""

    check_id: str
    title: str
    cells: list[LocationCell]

    @property
    def differs(self) -> bool:
        return len({cell.status for cell in self.cells}) > 1


@dataclass
class SideBySide:
    """The verdicts and facts of each location of one server (two or more)."""

    columns: list[LocationColumn]
    rows: list[LocationRow] = field(default_factory=list)
    # (fact, [(location label, text)] in column order), for the facts that differ.
    facts: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)

    @property
    def differing_rows(self) -> list[LocationRow]:
        return [row for row in self.rows if row.differs]


def side_by_side(
    names: tuple[str, ...], states: list[CheckState], runs: dict[str, ScanRun]
) -> SideBySide | None:
    """The comparison of the locations `names` (the server's, in declared order), or None when
    it is probed from one only."""
    if len(names) < 2:
        return None
    by_location: dict[str, list[CheckState]] = defaultdict(list)
    for state in states:
        by_location[state.location].append(state)
    columns = [
        LocationColumn(name, settled_status(by_location[name]), runs.get(name)) for name in names
    ]
    found = SideBySide(columns)
    for spec in scanner.CATALOG:
        cells = [_worst(name, by_location[name], spec.id) for name in names]
        if any(cell.status for cell in cells):
            found.rows.append(LocationRow(spec.id, spec.title, cells))
    found.facts = differing_facts({label(name): runs.get(name) for name in names})
    return found


def _worst(location: str, states: list[CheckState], check_id: str) -> LocationCell:
    mine = [state for state in states if state.check_id == check_id]
    if not mine:
        return LocationCell(label(location), None, False, "Not checked from here yet.")
    worst = max(mine, key=lambda state: scanner.STATUS_RANK[state.status])
    return LocationCell(label(location), worst.status, worst.confirming, worst.summary)


def differing_facts(
    runs: dict[str, ScanRun | None],
) -> list[tuple[str, list[tuple[str, str]]]]:
    """The facts that are not the same from every location (runs by location label), as
    (fact, [(location label, text)]): whether each port answers, what the name resolved to,
    which product answered."""
    seen = {where: location_facts(run.facts if run else None) for where, run in runs.items()}
    labels = list(dict.fromkeys(key for found in seen.values() for key in found))
    rows = []
    for fact in labels:
        texts = [(where, found.get(fact, "(not probed)")) for where, found in seen.items()]
        if len({text for _, text in texts}) > 1:
            rows.append((fact, texts))
    return rows


def location_facts(facts: Json | None) -> dict[str, str]:
    """The facts a location decides, keyed without the address (inside and outside often
    resolve the name to different addresses): each port's outcome over the addresses probed."""
    if facts is None:
        return {}
    found = {"Addresses": ", ".join(facts.get("addresses") or []) or "(none)"}
    outcomes: dict[str, set[str]] = defaultdict(set)
    products: set[str] = set()
    for view in report.endpoints(facts):
        products.add(view.product or "?")
        for door in view.doors:
            for connection in (door.cleartext, door.implicit):
                if connection.get("port"):
                    port = f"{door.protocol.label} port {connection['port']}"
                    outcomes[port].add(_answer(connection))
    found["Product"] = ", ".join(sorted(products)) or "(none)"
    found.update({port: " / ".join(sorted(texts)) for port, texts in outcomes.items()})
    return found


def _answer(connection: Json) -> str:
    """ "answers" when the port took a connection and spoke, else what happened."""
    outcome = connection.get("outcome", "?")
    if outcome in ("ok", "closed"):
        return "answers" if outcome == "ok" else "closed"
    error = connection.get("error")
    return f"{outcome} ({error})" if error else str(outcome)
