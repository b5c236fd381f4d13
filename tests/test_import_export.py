"""Servers from and to CSV: csvio, `manage.py import_servers` and `manage.py export_servers`."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

import scanner
from popcompliance.audit.models import AuditEntry
from popcompliance.inventory.csvio import (
    COLUMNS,
    CsvFileError,
    ImportResult,
    RowError,
    decode_csv,
    export_csv,
    export_lines,
    formula_safe,
    import_csv,
    servers_for_export,
    unescaped,
)
from popcompliance.inventory.models import PORT_FIELDS, Policy, Server, ServerStatus, Tag

ROOT = Path(__file__).resolve().parent.parent
HEADER = "name,host,service_name,pop3_port,pop3s_port,site,tags,owner_email,scan_interval\n"
GOOD = "mail01,pop.example.com,mail.example.com,110,995,paris,prod;eu,a@example.com,30\n"


def run(text: str) -> ImportResult:
    return import_csv(io.StringIO(text))


def names() -> list[str]:
    return list(Server.objects.values_list("name", flat=True))


def test_it_creates_a_server_from_a_good_row(db):
    result = run(HEADER + GOOD)
    server = Server.objects.get(name="mail01")
    assert (result.created, result.errors) == (1, [])
    assert (server.host, server.service_name, server.site) == (
        "pop.example.com",
        "mail.example.com",
        "paris",
    )
    assert (server.pop3_port, server.pop3s_port, server.scan_interval) == (110, 995, 30)


def test_a_new_server_is_due_for_a_scan_now(db):
    before = timezone.now()
    run("name,host\nmail01,pop.example.com\n")
    assert before <= Server.objects.get().next_scan_at <= timezone.now()


def test_only_name_and_host_are_required_and_the_rest_get_defaults(db):
    run("host,name\npop.example.com,mail01\n")
    server = Server.objects.get(name="mail01")
    assert (server.pop3_port, server.pop3s_port, server.scan_interval) == (110, 995, 60)
    assert (server.owner_emails, server.policy) == ([], Policy.default())


def test_it_splits_tags_and_owner_emails_on_semicolons(db):
    run("name,host,tags,owner_email\nmail01,pop.example.com, prod ;eu;;prod,a@x.org; b@x.org\n")
    server = Server.objects.get(name="mail01")
    assert sorted(server.tags.values_list("name", flat=True)) == ["eu", "prod"]
    assert server.owner_emails == ["a@x.org", "b@x.org"]


def test_it_reuses_existing_tags(db):
    Tag.objects.create(name="prod")
    run("name,host,tags\nmail01,h1.example.com,prod\nmail02,h2.example.com,prod\n")
    assert Tag.objects.get(name="prod").servers.count() == 2


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("bad,pop.example.com,,70000,995,,,,", "pop3_port: must be between 1 and 65535, not 70000"),
        ("bad,pop.example.com,,110,0,,,,", "pop3s_port: must be between 1 and 65535, not 0"),
        ("bad,pop.example.com,,abc,995,,,,", "pop3_port: must be a whole number, not 'abc'"),
        ("bad,pop.example.com,,,,,,,0", "scan_interval: must be between 1 and 10080, not 0"),
        ("bad,pop.example.com,,,,,,,1.5", "scan_interval: must be a whole number, not '1.5'"),
        ("bad,pop example.com,,,,,,,", "host: not a host name or IP address: 'pop example.com'"),
        ("bad,,,,,,,,", "host: required"),
        (",pop.example.com,,,,,,,", "name: required"),
        ("bad,pop.example.com,,,,,,bob@,", "owner_email: 'bob@' is not a valid email address"),
        ("bad,pop.example.com,,,,,,,,extra", "expected 9 cells (one per header column), found 10"),
        ("bad,pop.example.com", "expected 9 cells (one per header column), found 2"),
        ("bad,pop.example.com,,,,,a\x00b,,", "the row contains a NUL character"),
        (f"bad,pop.example.com,,,,,{'t' * 51},,", "tags: '" + "t" * 51 + "': Ensure this value"),
        (f"{'n' * 201},pop.example.com,,,,,,,", "name: Ensure this value has at most 200"),
    ],
)
def test_a_bad_row_is_reported_with_its_line_and_reason_and_good_rows_are_kept(db, row, reason):
    result = run(HEADER + "good1,h1.example.com,,,,,,,\n" + row + "\ngood2,h2.example.com,,,,,,,\n")
    assert len(result.errors) == 1
    assert str(result.errors[0]).startswith(f"line 3: {reason}")
    assert (result.created, names()) == (2, ["good1", "good2"])


def test_a_rows_problems_are_reported_together(db):
    result = run(HEADER + "bad,pop.example.com,,x,y,,,,\nworse,pop.example.com,,0,,,,,0\n")
    assert [error.message for error in result.errors] == [
        "pop3_port: must be a whole number, not 'x'; pop3s_port: must be a whole number, not 'y'",
        "pop3_port: must be between 1 and 65535, not 0; "
        "scan_interval: must be between 1 and 10080, not 0",
    ]


def test_a_bad_port_is_not_blamed_on_the_host(db):
    result = run(HEADER + "bad,pop.example.com,,70000,,,,,\n")
    assert "host" not in result.errors[0].message


def test_an_unknown_policy_is_a_row_error_and_a_known_one_is_used(db):
    strict = Policy.objects.create(name="Strict")
    result = run("name,host,policy\nm1,h1.example.com,Strict\nm2,h2.example.com,Nope\n")
    assert result.errors == [RowError(3, "policy: there is no policy named 'Nope'")]
    assert Server.objects.get(name="m1").policy == strict


def test_a_repeated_name_is_reported_on_the_later_line(db):
    rows = "mail01,h1.example.com\nmail02,h2.example.com\nmail01,h3.example.com\n"
    result = run("name,host\n" + rows)
    assert result.errors == [RowError(4, "name 'mail01' already appears on line 2")]
    assert Server.objects.get(name="mail01").host == "h1.example.com"


def test_reimport_updates_by_name_and_counts_the_unchanged(db):
    run("name,host\nmail01,h1.example.com\nmail02,h2.example.com\n")
    result = run(
        "name,host\nmail01,new.example.com\nmail02,h2.example.com\nmail03,h3.example.com\n"
    )
    assert (result.created, result.updated, result.unchanged) == (1, 1, 1)
    assert Server.objects.get(name="mail01").host == "new.example.com"


def test_a_changed_tag_list_alone_counts_as_an_update(db):
    run("name,host,tags\nmail01,h1.example.com,a;b\n")
    result = run("name,host,tags\nmail01,h1.example.com,b\n")
    assert result.updated == 1
    assert list(Server.objects.get().tags.values_list("name", flat=True)) == ["b"]


def test_an_update_keeps_the_schedule_and_the_status(db):
    run("name,host\nmail01,h1.example.com\n")
    later = timezone.now() + timedelta(hours=3)
    Server.objects.update(next_scan_at=later, status=ServerStatus.COMPLIANT)
    run("name,host,pop3_port\nmail01,h2.example.com,1110\n")
    server = Server.objects.get()
    assert (server.next_scan_at, server.status) == (later, ServerStatus.COMPLIANT)


def test_an_empty_cell_resets_the_field_to_its_default(db):
    run(HEADER + GOOD)
    result = run(HEADER + "mail01,pop.example.com,,,,,,,\n")
    server = Server.objects.get()
    assert result.updated == 1
    assert (server.service_name, server.pop3_port, server.scan_interval) == ("", 110, 60)
    assert (server.owner_emails, server.tags.count()) == ([], 0)


def test_a_column_the_file_lacks_is_left_alone_on_update(db):
    run(HEADER + GOOD)
    run("name,host,scan_interval\nmail01,pop.example.com,5\n")
    server = Server.objects.get()
    assert (server.scan_interval, server.site, server.owner_emails) == (
        5,
        "paris",
        ["a@example.com"],
    )
    assert server.tags.count() == 2


def test_it_reads_a_bom_crlf_and_trailing_blank_lines_and_counts_physical_lines(db):
    text = "\ufeffname,host\r\nmail01,h1.example.com\r\n\r\nbad,\r\n\r\n\r\n"
    result = run(text)
    assert result.errors == [RowError(4, "host: required")]
    assert names() == ["mail01"]


def test_a_quoted_cell_spanning_lines_keeps_later_line_numbers_physical(db):
    text = 'name,host,site\nmail01,h1.example.com,"two\nlines"\nbad,,\n'
    errors = run(text).errors
    # A name may not hold a line break (popcompliance.limits), so the first row is refused too.
    assert [error.line for error in errors] == [2, 4]
    assert "U+000A" in errors[0].message and errors[1].message == "host: required"


def test_a_header_with_different_case_and_spaces_is_accepted(db):
    assert run(" Name , HOST \nmail01,h1.example.com\n").created == 1


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "the file is empty"),
        ("name,site\nmail01,paris\n", "the header lacks the required column(s) host"),
        ("mail01,h1.example.com\n", "unknown column(s) 'mail01', 'h1.example.com'"),
        ("name,host,colour,size\nm,h,red,3\n", "unknown column(s) 'colour', 'size'"),
        ("name,host,name\nm,h,m\n", "column(s) name appear more than once"),
    ],
)
def test_an_unusable_header_imports_nothing(db, text, reason):
    with pytest.raises(CsvFileError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        run(text)
    assert names() == []


def test_a_non_utf8_file_is_refused_with_the_line_of_the_bad_byte():
    data = "name,host\nmail01,h1.example.com\nmaïl02,h2\n".encode("latin-1")
    with pytest.raises(CsvFileError, match=r"line 3: not UTF-8 text \(byte 0xef\)"):
        decode_csv(data)


def test_decoding_drops_the_byte_order_mark():
    assert decode_csv("\ufeffname,host\n".encode()) == "name,host\n"


def write(tmp_path: Path, content: str | bytes) -> str:
    path = tmp_path / "servers.csv"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return str(path)


def test_the_command_prints_the_summary_and_exits_0_when_all_rows_import(db, tmp_path):
    out = io.StringIO()
    call_command("import_servers", write(tmp_path, HEADER + GOOD), stdout=out)
    assert out.getvalue() == "created 1, updated 0, unchanged 0, errors 0\n"


def test_the_command_exits_1_with_the_error_lines_and_keeps_good_rows(db, tmp_path):
    out, err = io.StringIO(), io.StringIO()
    path = write(tmp_path, "name,host\nmail01,h1.example.com\nmail02,\n")
    with pytest.raises(CommandError) as raised:
        call_command("import_servers", path, stdout=out, stderr=err)
    assert raised.value.returncode == 1
    assert out.getvalue() == "created 1, updated 0, unchanged 0, errors 1\n"
    assert err.getvalue() == "line 3: host: required\n"
    assert names() == ["mail01"]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("name,host\nmaïl01,h1\n".encode("latin-1"), "not UTF-8 text"),
        ("name\nmail01\n", "lacks the required column(s) host"),
    ],
)
def test_the_command_exits_2_and_imports_nothing_for_an_unusable_file(
    db, tmp_path, content, reason
):
    with pytest.raises(CommandError, match=r"nothing imported") as raised:
        call_command("import_servers", write(tmp_path, content))
    assert raised.value.returncode == 2
    assert reason in str(raised.value)
    assert names() == []


def test_the_command_exits_2_for_a_missing_file(db, tmp_path):
    with pytest.raises(CommandError, match="No such file") as raised:
        call_command("import_servers", str(tmp_path / "absent.csv"))
    assert raised.value.returncode == 2


def database_url() -> str:
    """A URL for the database this test runs on (pytest-django's test database)."""
    settings = connection.settings_dict
    if settings["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{settings['NAME']}"
    host, port = settings["HOST"] or "127.0.0.1", settings["PORT"] or 5432
    return f"postgres://{settings['USER']}@{host}:{port}/{settings['NAME']}"


def manage(*args: str, stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    env["POPC_TEST_DATABASE_URL"] = env["DATABASE_URL"] = database_url()
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        input=stdin,
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )


@pytest.mark.django_db(transaction=True)
def test_manage_py_imports_from_stdin_and_exits_1_when_a_row_fails():
    csv_bytes = b"\xef\xbb\xbfname,host,pop3_port\r\nmail01,h1.example.com,110\r\nbad,h2,70000\r\n"
    done = manage("import_servers", "-", stdin=csv_bytes)
    assert done.returncode == 1, done.stderr
    assert done.stdout == b"created 1, updated 0, unchanged 0, errors 1\n"
    assert b"line 3: pop3_port: must be between 1 and 65535, not 70000\n" in done.stderr
    assert names() == ["mail01"]


@pytest.mark.django_db(transaction=True)
def test_manage_py_exits_2_for_a_non_utf8_file():
    done = manage("import_servers", "-", stdin="name,host\nmaïl,h\n".encode("latin-1"))
    assert done.returncode == 2
    assert b"line 2: not UTF-8 text" in done.stderr


def snapshot() -> list[tuple[object, ...]]:
    """Everything the CSV carries about each server."""
    fields = ("name", "host", "service_name", "protocols", *PORT_FIELDS, "site", "owner_emails")
    return [
        (*(getattr(s, f) for f in fields), s.scan_interval, s.policy.name, tag_names(s))
        for s in servers_for_export()
    ]


def tag_names(server: Server) -> list[str]:
    return sorted(tag.name for tag in server.tags.all())


def test_export_then_import_into_an_empty_inventory_gives_identical_servers(db):
    Policy.objects.create(name="Strict")
    run(
        "name,host,service_name,pop3_port,pop3s_port,site,tags,owner_email,scan_interval,policy\n"
        'mail01,pop.example.com,mail.example.com,1110,1995,"Paris, FR",prod;eu,a@x.org;b@x.org,5,'
        "Strict\nmail02,192.0.2.7,,,,,,,,\n"
    )
    before, stream = snapshot(), io.StringIO()
    assert export_csv(servers_for_export(), stream) == 2
    Server.objects.all().delete()
    Tag.objects.all().delete()
    result = run(stream.getvalue())
    assert (result.created, result.errors, snapshot()) == (2, [], before)


def test_export_then_import_round_trips_protocols_and_their_ports(db):
    run(
        "name,host,protocols,pop3_port,imap_port,imaps_port,submission_port,submissions_port\n"
        "mail01,h1.example.com,submission;imap,,1143,1993,2587,2465\n"
        "mail02,h2.example.com,,1110,,,,\n"
    )
    before, stream = snapshot(), io.StringIO()
    export_csv(servers_for_export(), stream)
    cells = list(csv.DictReader(io.StringIO(stream.getvalue())))
    assert [row["protocols"] for row in cells] == ["imap;submission", "pop3"]
    assert run(stream.getvalue()).unchanged == 2
    Server.objects.all().delete()
    result = run(stream.getvalue())
    assert (result.created, result.errors, snapshot()) == (2, [], before)


def test_the_export_command_writes_the_header_and_one_line_per_server(db, tmp_path):
    run("name,host,tags\nmail01,h1.example.com,b;a\n")
    out = io.StringIO()
    call_command("export_servers", stdout=out)
    assert out.getvalue().splitlines() == [
        "name,host,service_name,protocols,pop3_port,pop3s_port,imap_port,imaps_port,"
        "submission_port,submissions_port,site,tags,owner_email,scan_interval,policy",
        f"mail01,h1.example.com,,pop3,110,995,143,993,587,465,,a;b,,60,{Policy.default().name}",
    ]


def test_the_export_command_writes_a_file_that_imports_unchanged(db, tmp_path):
    run(HEADER + GOOD)
    path = tmp_path / "out.csv"
    call_command("export_servers", str(path), stdout=io.StringIO())
    assert run(path.read_text(encoding="utf-8")).unchanged == 1


# Formula injection: a spreadsheet must show these cells, never run them.
FORMULAS = ["=cmd|' /c calc'!A1", "+SUM(1,1)", "-2+3", "@SUM(A1)", '=HYPERLINK("http://x")']


@pytest.mark.parametrize("formula", FORMULAS)
def test_the_export_writes_a_formula_as_text_and_the_import_reads_it_back(db, formula):
    Server.objects.create(name=formula, host="h.example.com", site=formula)
    stream = io.StringIO()
    export_csv(servers_for_export(), stream)
    cells = next(csv.DictReader(io.StringIO(stream.getvalue())))
    assert cells["name"] == cells["site"] == f"'{formula}"
    Server.objects.all().delete()
    assert run(stream.getvalue()).created == 1
    assert Server.objects.values_list("name", "site").get() == (formula, formula)


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r", "'"])
def test_every_formula_start_gets_an_apostrophe(start):
    assert formula_safe(f"{start}x") == f"'{start}x"
    assert unescaped(formula_safe(f"{start}x")) == f"{start}x"


def test_plain_cells_and_apostrophes_inside_are_left_alone():
    assert formula_safe("mail01") == "mail01" and formula_safe("a=b") == "a=b"
    assert unescaped("'mail01") == "'mail01"  # not one the export wrote: kept as typed


def test_a_tag_and_an_owner_that_start_like_formulas_are_neutralised(db):
    server = Server.objects.create(name="m", host="h.example.com", owner_emails=["-a@x.org"])
    server.tags.set([Tag.objects.create(name="@prod")])
    line = io.StringIO()
    export_csv(servers_for_export(), line)
    cells = next(csv.DictReader(io.StringIO(line.getvalue())))
    assert (cells["tags"], cells["owner_email"]) == ("'@prod", "'-a@x.org")


def test_the_export_reads_the_servers_in_chunks_with_two_queries_each(
    db, django_assert_num_queries
):
    for i in range(5):
        Server.objects.create(name=f"m{i}", host="h.example.com").tags.set(
            [Tag.objects.get_or_create(name=f"t{i % 2}")[0]]
        )
    with django_assert_num_queries(2):
        lines = list(export_lines(servers_for_export()))
    assert len(lines) == 6


def refuse_name_in_database(name: str) -> None:
    """A database rule the model knows nothing of: inserting a server called `name` fails."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE FUNCTION refuse_poison() RETURNS trigger AS $$ BEGIN "
                f"IF NEW.name = '{name}' THEN RAISE EXCEPTION 'name refused by a rule'; END IF; "
                "RETURN NEW; END $$ LANGUAGE plpgsql"
            )
            cursor.execute(
                "CREATE TRIGGER refuse_poison BEFORE INSERT ON inventory_server "
                "FOR EACH ROW EXECUTE FUNCTION refuse_poison()"
            )
        else:
            cursor.execute(
                "CREATE TRIGGER refuse_poison BEFORE INSERT ON inventory_server "
                f"WHEN NEW.name = '{name}' BEGIN SELECT RAISE(ABORT, 'name refused by a rule'); END"
            )


def test_a_row_the_database_refuses_costs_only_itself_in_a_bulk_chunk(db):
    refuse_name_in_database("poison")
    rows = "".join(f"m{i},h{i}.example.com,t{i % 3}\n" for i in range(30))
    result = run("name,host,tags\n" + rows + "poison,p.example.com,\nlast,l.example.com,t1\n")
    assert result.created == 31
    assert [(e.line, "name refused by a rule" in e.message) for e in result.errors] == [(32, True)]
    assert Server.objects.count() == 31 and "poison" not in names()
    assert tag_names(Server.objects.get(name="last")) == ["t1"]


def test_a_large_import_writes_in_chunks_and_records_each_server_in_the_audit_log(
    db, django_assert_max_num_queries
):
    Server.objects.create(name="m0", host="old.example.com")
    rows = "".join(f"m{i},h{i}.example.com,t{i % 2}\n" for i in range(2500))
    # A handful of queries per chunk of a thousand rows, not one or more per row (SQLite splits
    # the INSERTs further, by its limit on a statement's parameters: servers, their tags, their
    # audit entries and their per-location schedules).
    with django_assert_max_num_queries(40 if connection.vendor == "postgresql" else 150):
        result = run("name,host,tags\n" + rows)
    assert (result.created, result.updated, result.errors) == (2499, 1, [])
    assert Server.objects.count() == 2500
    assert tag_names(Server.objects.get(name="m2499")) == ["t1"]
    created = AuditEntry.objects.filter(object_type="server", action="created")
    assert created.count() == 2500  # m0's own creation, then the import's 2,499
    changed = AuditEntry.objects.get(object_type="server", action="changed")
    assert changed.changes == {"host": ["old.example.com", "h0.example.com"], "tags": [[], ["t0"]]}
    with django_assert_max_num_queries(20):
        assert run("name,host,tags\n" + rows).unchanged == 2500


def test_a_carriage_return_inside_a_cell_stays_in_its_row(db):
    Server.objects.create(name="m1", host="h.example.com", site="a\rb")  # stored before the rules
    stream = io.StringIO(newline="")
    export_csv(servers_for_export(), stream)
    rows = list(csv.reader(io.StringIO(stream.getvalue(), newline="")))
    assert len(rows) == 2 and rows[1][COLUMNS.index("site")] == "a\rb"


# Protocols and their ports.

PROTOCOLS_HEADER = (
    "name,host,protocols,pop3_port,pop3s_port,imap_port,imaps_port,submission_port,"
    "submissions_port\n"
)


def test_a_row_declares_its_protocols_and_their_ports(db):
    result = run(PROTOCOLS_HEADER + "mail01,h1.example.com,imap;POP3;submission,,,143,1993,,2465\n")
    server = Server.objects.get()
    assert result.errors == []
    assert server.protocols == "pop3,imap,submission"  # stored in the catalog's order
    target = server.as_target()
    assert target.protocols == ("pop3", "imap", "submission")
    assert [target.ports(p) for p in scanner.CLIENT_PROTOCOLS] == [
        (110, 995),
        (143, 1993),
        (587, 2465),
    ]


def test_commas_separate_protocols_as_well_as_semicolons(db):
    run('name,host,protocols\nmail01,h1.example.com,"submission, imap"\n')
    assert Server.objects.get().protocols == "imap,submission"


def test_an_empty_protocols_cell_means_pop3_and_a_file_without_the_column_keeps_them(db):
    run("name,host,protocols\nmail01,h1.example.com,imap\nmail02,h2.example.com,\n")
    run("name,host\nmail01,new.example.com\nmail03,h3.example.com\n")
    assert dict(Server.objects.values_list("name", "protocols")) == {
        "mail01": "imap",  # updated by a file without the column: left alone
        "mail02": "pop3",  # an empty cell: the default
        "mail03": "pop3",  # created by a file without the column: the default
    }


def test_the_same_protocols_in_another_order_are_unchanged(db):
    run("name,host,protocols\nmail01,h1.example.com,pop3;imap\n")
    assert run('name,host,protocols\nmail01,h1.example.com,"IMAP , pop3"\n').unchanged == 1


@pytest.mark.parametrize(
    ("cells", "reason"),
    [
        ("pop3;ftp,,,,,,", "protocols: unknown protocol ftp (known: pop3, imap, submission)"),
        ("imap4,,,,,,", "protocols: unknown protocol imap4 (known: pop3, imap, submission)"),
        (";,,,,,,", "protocols: at least one protocol is needed (pop3, imap, submission)"),
        ("imap,,,0,,,", "imap_port: must be between 1 and 65535, not 0"),
        ("imap,,,,70000,,", "imaps_port: must be between 1 and 65535, not 70000"),
        ("submission,,,,,587x,", "submission_port: must be a whole number, not '587x'"),
        ("submission,,,,,,-465", "submissions_port: must be between 1 and 65535, not -465"),
        ("smtp,,,,,,x", "protocols: unknown protocol smtp (known: pop3, imap, submission); "
         "submissions_port: must be a whole number, not 'x'"),
    ],
)  # fmt: skip
def test_a_bad_protocol_or_port_is_a_row_error_with_its_line(db, cells, reason):
    good = "good1,h1.example.com,imap,,,,,,\n", "good2,h2.example.com,,,,,,,\n"
    result = run(PROTOCOLS_HEADER + good[0] + f"bad,h.example.com,{cells}\n" + good[1])
    assert [str(error) for error in result.errors] == [f"line 3: {reason}"]
    assert dict(Server.objects.values_list("name", "protocols")) == {
        "good1": "imap",
        "good2": "pop3",
    }


def test_an_import_that_changes_protocols_and_ports_is_audited(db):
    run("name,host\nmail01,h1.example.com\n")
    run("name,host,protocols,imap_port\nmail01,h1.example.com,pop3;imap,1143\n")
    changed = AuditEntry.objects.get(object_type="server", action="changed")
    assert changed.changes == {"protocols": ["pop3", "pop3,imap"], "IMAP4 port": [143, 1143]}
