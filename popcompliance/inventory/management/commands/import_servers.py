"""`manage.py import_servers FILE.csv` (or `-` for standard input): create or update servers.

The columns and rules are in popcompliance.inventory.csvio. The summary goes to standard output,
one line per refused row to standard error. Exit status: 0 all rows imported, 1 some rows
refused (the others are saved), 2 the file itself is unusable (nothing is saved).
"""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

import scanner
from popcompliance.audit.context import acting_as
from popcompliance.inventory import csvio

EXIT_ROWS_REFUSED = 1
EXIT_FILE_UNUSABLE = 2


class Command(BaseCommand):
    help = (
        "Create or update servers from a CSV file with a header row. Columns: "
        f"{', '.join(csvio.COLUMNS)} (name and host required; tags and owner_email separated "
        f"by ';'; protocols from {', '.join(scanner.PROTOCOL_BY_NAME)} separated by ';' or ',', "
        "empty for pop3; scan_interval in minutes; policy by name). Rows update servers by "
        "name; an empty cell resets the field to its default. Exit status 0 all imported, 1 "
        "some rows refused, 2 file unusable."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="The CSV file, or - for standard input.")

    @acting_as("command import_servers")
    def handle(self, *args: Any, file: str, **options: Any) -> None:
        try:
            text = csvio.decode_csv(_read(file))
            result = csvio.import_csv(io.StringIO(text, newline=""))
        except (OSError, csvio.CsvFileError) as exc:
            raise CommandError(
                f"{file}: {exc}; nothing imported", returncode=EXIT_FILE_UNUSABLE
            ) from exc
        self.stdout.write(result.summary())
        for error in result.errors:
            self.stderr.write(str(error))
        if result.errors:
            raise CommandError(
                f"{len(result.errors)} row(s) not imported; the others were saved",
                returncode=EXIT_ROWS_REFUSED,
            )


def _read(file: str) -> bytes:
    """The file's bytes; decoding is csvio's job so a non-UTF-8 file gets one clear error."""
    return sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
