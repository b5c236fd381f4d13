"""What changed between two scans of one server: their verdicts and their key facts."""

from __future__ import annotations

from dataclasses import dataclass, field

import scanner
from popcompliance.compliance.models import ScanRun
from popcompliance.dashboard.facts import Json, check_statuses, key_facts

MISSING = "(absent)"


@dataclass(frozen=True)
class CheckDifference:
    check_id: str
    before: Json | None
    after: Json | None


@dataclass
class Comparison:
    """The differences between an older and a newer scan, in catalog and report order."""

    older: ScanRun
    newer: ScanRun
    checks: list[CheckDifference] = field(default_factory=list)
    facts: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not self.checks and not self.facts


def compare(first: ScanRun, second: ScanRun) -> Comparison:
    """Compare two runs, whichever order they are given in. A run that crashed has no facts:
    everything in the other then shows as changed from "(absent)"."""
    older, newer = sorted((first, second), key=lambda run: (run.started_at, run.pk))
    comparison = Comparison(older, newer)
    before, after = check_statuses(older.facts), check_statuses(newer.facts)
    ids = scanner.CHECK_IDS
    for check_id in [*ids, *sorted((before | after).keys() - set(ids))]:
        old, new = before.get(check_id), after.get(check_id)
        if _status(old) != _status(new):
            comparison.checks.append(CheckDifference(check_id, old, new))
    old_facts, new_facts = key_facts(older.facts), key_facts(newer.facts)
    for label in [*old_facts, *(k for k in new_facts if k not in old_facts)]:
        old_text, new_text = old_facts.get(label, MISSING), new_facts.get(label, MISSING)
        if old_text != new_text:
            comparison.facts.append((label, old_text, new_text))
    return comparison


def _status(check: Json | None) -> str | None:
    return None if check is None else check.get("status")
