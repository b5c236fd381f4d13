"""Servers to and from CSV: the logic behind `import_servers`, `export_servers` and any upload form.

The file has a header row naming its columns, in any order, from `COLUMNS`; `name` and `host` are
required. `tags` and `owner_email` hold several values separated by `;`, `protocols` names the
client protocols the server serves (`pop3;imap;submission`, `,` accepted too), each with its two
port columns (`pop3_port`/`pop3s_port`, `imap_port`/`imaps_port`,
`submission_port`/`submissions_port`), `scan_interval` is in minutes, and `policy` (optional)
names an existing policy.

Rules an operator can rely on:
- A row updates the server with the same `name`, or creates it (due for a scan at once). An
  update changes only the listed fields: the schedule and status are kept.
- The CSV is the truth for the columns it has: an empty cell sets the field to its default (no
  tags, no owners, POP3 only, ports 110/995, 143/993 and 587/465, 60 minutes, the default
  policy). A column the file lacks leaves that field alone on update, so a
  `name,host,scan_interval` file changes only intervals, and a file from before `protocols`
  existed creates POP3 servers and leaves the protocols of existing ones as they are.
- Each row is saved in its own transaction: a bad row is reported by its physical line number
  (the header is line 1) and never stops the others. Blank lines are skipped.
- A problem with the file itself (not UTF-8, no usable header, broken CSV) raises CsvFileError
  before anything is saved.
"""

from __future__ import annotations

import csv
import io
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Any, TextIO

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import DatabaseError, transaction
from django.db.models import QuerySet
from django.utils import timezone

import scanner
from popcompliance.audit.models import Action
from popcompliance.audit.recorder import record_many, shown_values, values_of
from popcompliance.audit.registry import SERVER, Audited, audited
from popcompliance.inventory.models import PORT_FIELDS, Policy, Server, Tag

COLUMNS = (
    "name",
    "host",
    "service_name",
    "protocols",
    *PORT_FIELDS,
    "site",
    "tags",
    "owner_email",
    "scan_interval",
    "policy",
)
REQUIRED_COLUMNS = ("name", "host")
INTEGER_COLUMNS = frozenset({*PORT_FIELDS, "scan_interval"})
# Where a column's value goes on the model, when the names differ.
ATTRIBUTE_OF_COLUMN = {"owner_email": "owner_emails", "policy": "policy_id"}
COLUMN_OF_FIELD = {"owner_emails": "owner_email"}
SEPARATOR = ";"
# Spreadsheets run a cell that starts with one of these as a formula (CSV injection): the export
# writes such cells with a leading apostrophe, which the import takes off again.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")
# What the export reads of each server: its id, then the values _cells turns into COLUMNS.
EXPORTED = (
    "pk", "name", "host", "service_name", "protocols", *PORT_FIELDS, "site", "owner_emails",
    "scan_interval", "policy__name",
)  # fmt: skip
# Servers read per query by the export, and rows written together by the import.
EXPORT_CHUNK = 2000
IMPORT_CHUNK = 1000
# The audit log's label of a server's tags.
TAGS_LABEL = SERVER.many[0].label
# Upper limits at or above this come from the database's integer range, not from a rule worth
# quoting to an operator ("between 1 and 2147483647").
_DATABASE_INT_MAX = 2**31 - 1


class CsvFileError(Exception):
    """The file as a whole cannot be imported; nothing was saved."""


@dataclass(frozen=True)
class RowError:
    """Why the row starting on physical line `line` was not imported."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class ImportResult:
    """Counts of what an import did, and the rows it refused."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {"created": self.created, "updated": self.updated, "unchanged": self.unchanged}

    def summary(self) -> str:
        return (
            f"created {self.created}, updated {self.updated}, "
            f"unchanged {self.unchanged}, errors {len(self.errors)}"
        )


# Called after each chunk with the rows done, the rows in all and the result so far.
Progress = Callable[[int, int, "ImportResult"], None]


class _RowInvalid(Exception):
    """One row's problems, already worded for the operator."""


def decode_csv(data: bytes) -> str:
    """The text of a file's bytes (a UTF-8 byte-order mark is dropped), or CsvFileError."""
    # The mark is removed before decoding so the error's offset counts from the file's start.
    data = data.removeprefix(b"\xef\xbb\xbf")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        byte = f"0x{data[exc.start]:02x}"
        raise CsvFileError(
            f"line {line}: not UTF-8 text (byte {byte}); save the file as UTF-8 CSV"
        ) from exc


def import_csv(text_stream: TextIO, progress: Progress | None = None) -> ImportResult:
    """Create or update servers from CSV text, IMPORT_CHUNK rows at a time: a handful of queries
    per chunk, whatever its size. A chunk the database refuses is saved again row by row, each
    in its own transaction (a savepoint inside a caller's), so a bad row costs only itself.
    `progress(rows done, rows in all, result so far)` is called after each chunk."""
    records = _read_records(text_stream)
    if not records:
        raise CsvFileError("the file is empty: line 1 must be the header")
    (_, header), rows = records[0], records[1:]
    importer = _Importer(_parse_header(header))
    for start in range(0, len(rows), IMPORT_CHUNK):
        importer.import_chunk(rows[start : start + IMPORT_CHUNK])
        if progress is not None:
            progress(min(start + IMPORT_CHUNK, len(rows)), len(rows), importer.result)
    return importer.result


def count_rows(text: str) -> int:
    """How many rows (besides the header) a decoded file has, or CsvFileError."""
    return max(len(_read_records(io.StringIO(text, newline=""))) - 1, 0)


def _read_records(text_stream: TextIO) -> list[tuple[int, list[str]]]:
    """The non-blank records, each with the physical line it starts on. The whole file is parsed
    before anything is saved, so a file that is not CSV text imports nothing."""
    try:
        text = text_stream.read()
    except UnicodeDecodeError as exc:
        raise CsvFileError(f"not UTF-8 text ({exc.reason}); save the file as UTF-8 CSV") from exc
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    records, start = [], 1
    try:
        for cells in reader:
            if any(cell.strip() for cell in cells):
                records.append((start, cells))
            # A quoted cell may span lines, so the next record starts after the last line read.
            start = reader.line_num + 1
    except csv.Error as exc:
        raise CsvFileError(f"line {reader.line_num}: not valid CSV ({exc})") from exc
    return records


def _parse_header(header: list[str]) -> list[str]:
    """The header's column names, or CsvFileError naming what is wrong with them."""
    columns = [cell.strip().lower() for cell in header]
    unknown = [column for column in columns if column not in COLUMNS]
    if unknown:
        raise CsvFileError(
            f"unknown column(s) {', '.join(map(repr, unknown))} in the header; "
            f"the first line must name columns from: {', '.join(COLUMNS)}"
        )
    if twice := sorted({column for column in columns if columns.count(column) > 1}):
        raise CsvFileError(f"column(s) {', '.join(twice)} appear more than once in the header")
    if missing := [column for column in REQUIRED_COLUMNS if column not in columns]:
        raise CsvFileError(f"the header lacks the required column(s) {', '.join(missing)}")
    return columns


class _Importer:
    """Imports rows a chunk at a time, remembering which names the file has already used."""

    def __init__(self, columns: list[str]) -> None:
        self.columns = columns
        # One "now" for the whole file: every server it creates is due at the next dispatch.
        self.now = timezone.now()
        self.policies = Policy.objects.in_bulk()
        self.policy_ids = {policy.name: pk for pk, policy in self.policies.items()}
        self.default_policy_id: int | None = None
        self.line_of_name: dict[str, int] = {}
        self.result = ImportResult()

    def import_chunk(self, rows: list[tuple[int, list[str]]]) -> None:
        """Check every row, then write the good ones together (or one by one if that fails)."""
        converted = []
        for line, cells in rows:
            with self.refusals(line):
                converted.append((line, *self._convert_row(line, cells)))
        existing = _servers_named([values["name"] for _, values, _ in converted])
        plans = []
        for line, values, tags in converted:
            with self.refusals(line):
                plans.append(self._plan(line, existing.get(values["name"]), values, tags))
        try:
            with transaction.atomic():
                _write(plans, self.now)
        except DatabaseError:
            self._write_one_by_one(plans)
        else:
            for plan in plans:
                self.count(plan.outcome)
        # Rows are refused at several steps: report them in the file's order.
        self.result.errors.sort(key=lambda error: error.line)

    def _write_one_by_one(self, plans: list[_Plan]) -> None:
        """The chunk failed as a whole (a name taken meanwhile, a value the database refuses):
        save each row on its own, so the bad one is reported by its line and the rest kept."""
        for plan in plans:
            with self.refusals(plan.line), transaction.atomic():
                self.count(_save(plan.values, plan.tags, self.now))

    @contextmanager
    def refusals(self, line: int) -> Iterator[None]:
        """Record why the row on `line` failed, in the operator's words, and carry on."""
        try:
            yield
        except _RowInvalid as exc:
            self.result.errors.append(RowError(line, str(exc)))
        except DatabaseError as exc:
            # The row's savepoint is rolled back; the rows before and after are unaffected.
            reason = (str(exc).strip() or type(exc).__name__).splitlines()[0]
            self.result.errors.append(RowError(line, f"the database refused the row: {reason}"))

    def count(self, outcome: str) -> None:
        setattr(self.result, outcome, getattr(self.result, outcome) + 1)

    def _convert_row(self, line: int, cells: list[str]) -> tuple[dict[str, Any], list[str] | None]:
        if len(cells) != len(self.columns):
            raise _RowInvalid(
                f"expected {len(self.columns)} cells (one per header column), found {len(cells)}"
            )
        if any("\x00" in cell for cell in cells):
            # Refused before the name is looked up: PostgreSQL cannot even compare such text.
            raise _RowInvalid("the row contains a NUL character")
        raw = {
            column: unescaped(cell.strip())
            for column, cell in zip(self.columns, cells, strict=True)
        }
        self._claim_name(line, raw["name"])
        return self._convert(raw)

    def _plan(
        self, line: int, server: Server | None, values: dict[str, Any], tags: list[str] | None
    ) -> _Plan:
        """What saving the row will change, checked by the model's rules."""
        if server is None:
            # A file without a policy column gives new servers the default policy.
            server = Server(next_scan_at=self.now, **{"policy_id": self._policy_id(""), **values})
            server.policy = self._policy(server.policy_id)
            _validate(server, bulk=True)
            return _Plan(line, values, tags, server, "created", [], bool(tags), {})
        before = shown_values(_audit_spec(), server)
        changed = [name for name, value in values.items() if getattr(server, name) != value]
        for name in changed:
            setattr(server, name, values[name])
        server.policy = self._policy(server.policy_id)
        _validate(server, bulk=True)
        old_tags = sorted(tag.name for tag in server.tags.all())
        retag = tags is not None and set(tags) != set(old_tags)
        after = shown_values(_audit_spec(), server)
        audit = {
            label: [before[label], new] for label, new in after.items() if before[label] != new
        }
        if retag:
            audit[TAGS_LABEL] = [old_tags, sorted(tags or [])]
        outcome = "updated" if changed or retag else "unchanged"
        return _Plan(line, values, tags, server, outcome, changed, retag, audit)

    def _claim_name(self, line: int, name: str) -> None:
        """Refuse a row without a name, or with a name an earlier row of the file used."""
        if not name:
            raise _RowInvalid("name: required")
        if name in self.line_of_name:
            raise _RowInvalid(f"name {name!r} already appears on line {self.line_of_name[name]}")
        self.line_of_name[name] = line

    def _convert(self, raw: dict[str, str]) -> tuple[dict[str, Any], list[str] | None]:
        """Model attribute values and tag names (None: no tags column) from a row's cells."""
        values, problems = {}, []
        for column, text in raw.items():
            try:
                if column == "tags":
                    _check_tags(_split(text))
                else:
                    values[ATTRIBUTE_OF_COLUMN.get(column, column)] = self._value(column, text)
            except _RowInvalid as exc:
                problems.append(str(exc))
        if problems:
            raise _RowInvalid("; ".join(problems))
        return values, (_split(raw["tags"]) if "tags" in raw else None)

    def _value(self, column: str, text: str) -> Any:
        """One cell as a model value; an empty cell means the field's default."""
        if column == "policy":
            return self._policy_id(text)
        if not text:
            return Server._meta.get_field(ATTRIBUTE_OF_COLUMN.get(column, column)).get_default()
        if column in INTEGER_COLUMNS:
            if not re.fullmatch(r"[+-]?[0-9]+", text):
                raise _RowInvalid(f"{column}: must be a whole number, not {text!r}")
            return int(text)
        if column == "protocols":
            return _protocols(text)
        return _split(text) if column == "owner_email" else text

    def _policy(self, pk: int) -> Policy:
        """A policy by id, from the importer's list (the default one may be created meanwhile:
        a row without a policy column gets it)."""
        if pk not in self.policies:
            self.policies[pk] = Policy.objects.get(pk=pk)
        return self.policies[pk]

    def _policy_id(self, name: str) -> int:
        if not name:
            if self.default_policy_id is None:
                self.default_policy_id = Policy.default().pk
            return self.default_policy_id
        if name not in self.policy_ids:
            raise _RowInvalid(f"policy: there is no policy named {name!r}")
        return self.policy_ids[name]


@dataclass
class _Plan:
    """One checked row: the server as it will be saved, and what changes."""

    line: int
    values: dict[str, Any]
    tags: list[str] | None
    server: Server
    outcome: str  # created, updated or unchanged
    changed: list[str]  # the attributes an update writes
    retag: bool
    audit: dict[str, list[Any]]  # the audit log's {label: [old, new]} of an update


def _servers_named(names: list[str]) -> dict[str, Server]:
    """The existing servers of these names, with their policies and tags (two queries)."""
    servers = (
        Server.objects.filter(name__in=names).select_related("policy").prefetch_related("tags")
    )
    return {server.name: server for server in servers}


def _write(plans: list[_Plan], now: datetime) -> None:
    """Save a chunk's checked rows in bulk: the new servers in one INSERT, the updated ones in
    one UPDATE per set of changed columns, the tag links, and their audit entries. Bulk writes
    send no model signals, so the audit entries are written here, as the signals would."""
    created = [plan for plan in plans if plan.outcome == "created"]
    Server.objects.bulk_create([plan.server for plan in created])
    by_columns: dict[tuple[str, ...], list[Server]] = defaultdict(list)
    for plan in plans:
        if plan.changed:
            plan.server.updated_at = now
            by_columns[tuple(sorted(plan.changed))].append(plan.server)
    for columns, servers in by_columns.items():
        Server.objects.bulk_update(servers, [*columns, "updated_at"])
    _link_tags([plan for plan in plans if plan.retag])
    record_many(
        _audit_spec(),
        [(Action.CREATED, plan.server, _creation(plan)) for plan in created]
        + [(Action.CHANGED, plan.server, plan.audit) for plan in plans if plan.audit],
    )


def _audit_spec() -> Audited:
    """The audit log's view of a server, its fields resolved against the model."""
    spec = audited(Server)
    assert spec is not None
    return spec


def _creation(plan: _Plan) -> dict[str, list[Any]]:
    """A new server's audit changes, as the signals record a creation and then its tags."""
    changes: dict[str, list[Any]] = {
        k: [None, v] for k, v in values_of(_audit_spec(), plan.server).items()
    }
    if plan.tags:
        changes[TAGS_LABEL] = [[], sorted(plan.tags)]
    return changes


def _link_tags(plans: list[_Plan]) -> None:
    """Give each planned server exactly its tags: new tags are created one by one (audited like
    any tag), the links replaced in two queries."""
    names = {name for plan in plans for name in plan.tags or []}
    ids = dict(Tag.objects.filter(name__in=names).values_list("name", "pk"))
    for name in sorted(names - ids.keys()):
        ids[name] = Tag.objects.create(name=name).pk
    links = Server.tags.through
    updated = [plan.server.pk for plan in plans if plan.outcome == "updated"]
    links.objects.filter(server_id__in=updated).delete()
    links.objects.bulk_create(
        links(server_id=plan.server.pk, tag_id=ids[name])
        for plan in plans
        for name in plan.tags or []
    )


def _split(text: str) -> list[str]:
    """The `;`-separated values of a cell, trimmed, without empties or repeats, in order."""
    return list(dict.fromkeys(part.strip() for part in text.split(SEPARATOR) if part.strip()))


def _protocols(text: str) -> str:
    """A `protocols` cell as the model stores it: names in the catalog's order, `,`-separated
    (`imap;POP3` gives `pop3,imap`), so an unchanged list never counts as an update."""
    try:
        return ",".join(scanner.parse_protocols(text))
    except ValueError as exc:
        raise _RowInvalid(f"protocols: {exc}") from exc


def _check_tags(names: list[str]) -> None:
    """The Tag model's field validation (length, no NUL) for each name; uniqueness is not a
    problem here because existing tags are reused."""
    for name in names:
        try:
            Tag(name=name).clean_fields()
        except ValidationError as exc:
            reason = " ".join(exc.message_dict["name"])
            raise _RowInvalid(f"tags: {name!r}: {reason}") from exc


def _save(values: dict[str, Any], tags: list[str] | None, now: datetime) -> str:
    """Create or update the server named in `values`: 'created', 'updated' or 'unchanged'."""
    server = Server.objects.select_for_update().filter(name=values["name"]).first()
    if server is None:
        server = Server(next_scan_at=now, **values)
        _validate(server)
        server.save()
        server.tags.set(_tags_named(tags or []))
        return "created"
    changed = [
        attribute for attribute, value in values.items() if getattr(server, attribute) != value
    ]
    for attribute in changed:
        setattr(server, attribute, values[attribute])
    _validate(server)
    retag = tags is not None and set(tags) != {tag.name for tag in server.tags.all()}
    if changed:
        server.save(update_fields=[*changed, "updated_at"])
    if retag:
        server.tags.set(_tags_named(tags or []))
    return "updated" if changed or retag else "unchanged"


def _tags_named(names: list[str]) -> list[Tag]:
    return [Tag.objects.get_or_create(name=name)[0] for name in names]


def _validate(server: Server, *, bulk: bool = False) -> None:
    """The model's validation, worded for the operator. Fields are checked on their own first
    because Server.clean() re-checks the ports through scanner.Target and would blame the host.
    In bulk, the checks that query the database are left out: the policy comes from the
    importer's own list, and a name taken meanwhile makes the chunk's INSERT fail, after which
    the rows are saved one by one with every check."""
    try:
        if bulk:
            server.clean_fields(exclude=["policy"])
            server.clean()
        else:
            server.clean_fields()
            server.full_clean()
    except ValidationError as exc:
        raise _RowInvalid(_explain(exc)) from exc


def _explain(error: ValidationError) -> str:
    """'column: reason' for each field the model refused."""
    problems = []
    for field_name, errors in error.update_error_dict({}).items():
        reasons = "; ".join(dict.fromkeys(_reason(field_name, each) for each in errors))
        if field_name == NON_FIELD_ERRORS:
            problems.append(reasons)
        else:
            problems.append(f"{COLUMN_OF_FIELD.get(field_name, field_name)}: {reasons}")
    return "; ".join(problems)


def _reason(field_name: str, error: ValidationError) -> str:
    value = (error.params or {}).get("value")
    if error.code == "blank":
        return "required"
    if error.code in ("min_value", "max_value"):
        return _range_reason(field_name, error.code, value)
    if field_name == "owner_emails" and error.code == "invalid":
        return f"{value!r} is not a valid email address"
    return " ".join(error.messages)


def _range_reason(field_name: str, code: str, value: object) -> str:
    """'must be between 1 and 65535, not 70000', from the field's own validators."""
    validators = Server._meta.get_field(field_name).validators
    low = max((v.limit_value for v in validators if isinstance(v, MinValueValidator)), default=0)
    high = min(
        (v.limit_value for v in validators if isinstance(v, MaxValueValidator)),
        default=_DATABASE_INT_MAX,
    )
    if high < _DATABASE_INT_MAX:
        return f"must be between {low} and {high}, not {value}"
    if code == "min_value":
        return f"must be at least {low}, not {value}"
    return f"must be at most {high}, not {value}"


def servers_for_export() -> QuerySet[Server]:
    """Every server, by name."""
    return Server.objects.order_by("name")


def export_csv(servers: QuerySet[Server], stream: TextIO) -> int:
    """Write servers as CSV that import_csv reads back; returns how many were written."""
    count = -1  # the header is no server
    for line in export_lines(servers):
        stream.write(line)
        count += 1
    return count


def export_lines(servers: QuerySet[Server]) -> Iterator[str]:
    """The CSV, one line at a time: the servers are read EXPORT_CHUNK at a time, as plain rows
    rather than model objects, so memory stays flat and time low however large the inventory
    (two queries per chunk: the servers with their policy's name, and their tags)."""
    line = _LineWriter()
    yield line.of(COLUMNS)
    rows = servers.prefetch_related(None).values_list(*EXPORTED).iterator(EXPORT_CHUNK)
    while chunk := list(islice(rows, EXPORT_CHUNK)):
        tags = _tag_names([row[0] for row in chunk])
        for pk, *values in chunk:
            yield line.of(_cells(values, tags[pk]))


def _tag_names(server_ids: list[int]) -> defaultdict[int, list[str]]:
    """Each server's tag names, sorted (one query)."""
    links = Server.tags.through.objects.filter(server_id__in=server_ids)
    names: defaultdict[int, list[str]] = defaultdict(list)
    for server_id, name in links.values_list("server_id", "tag__name"):
        names[server_id].append(name)
    for server_names in names.values():
        server_names.sort()
    return names


class _LineWriter:
    """csv.writer's quoting, one row at a time, as a string."""

    def __init__(self) -> None:
        self.buffer = io.StringIO()
        # CRLF, as RFC 4180 has it: the writer then also quotes a cell holding a lone CR, which
        # with "\n" lines it would leave bare and so split the row.
        self.writer = csv.writer(self.buffer, lineterminator="\r\n")

    def of(self, cells: Iterable[object]) -> str:
        self.buffer.seek(0)
        self.buffer.truncate()
        self.writer.writerow(cells)
        return self.buffer.getvalue()


def formula_safe(cell: str) -> str:
    """The cell as a spreadsheet shows it but never runs it: one that a spreadsheet would read
    as a formula (=, +, -, @, tab, carriage return first) gets a leading apostrophe, as does one
    that starts with an apostrophe itself, so that import can take exactly one off again."""
    return f"'{cell}" if cell.startswith(FORMULA_STARTS) else cell


def unescaped(cell: str) -> str:
    """The cell as formula_safe had it: one leading apostrophe off, where export added it."""
    if cell.startswith("'") and cell[1:].startswith(FORMULA_STARTS):
        return cell[1:]
    return cell


def _cells(values: list[Any], tags: list[str]) -> list[object]:
    """A row of EXPORTED values (without the id) as the COLUMNS' cells, text formula-safe."""
    row = dict(zip(EXPORTED[1:], values, strict=True))
    row["protocols"] = _protocols_cell(row["protocols"])
    row["tags"] = SEPARATOR.join(tags)
    row["owner_email"] = SEPARATOR.join(row["owner_emails"])
    row["policy"] = row["policy__name"]
    return [
        formula_safe(cell) if isinstance(cell, str) else cell
        for cell in (row[column] for column in COLUMNS)
    ]


def _protocols_cell(stored: str) -> str:
    """The stored `pop3,imap` as `pop3;imap`, the separator of the file's other lists. A value
    the scanner cannot read (written around the model's rules) is exported as it is, so that
    importing it back reports it rather than silently turning it into something else."""
    try:
        return SEPARATOR.join(scanner.parse_protocols(stored))
    except ValueError:
        return stored
