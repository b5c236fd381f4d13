"""`manage.py export_servers [FILE|-]`: every server as CSV that `import_servers` reads back."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from popcompliance.inventory import csvio


class Command(BaseCommand):
    help = (
        f"Write every server as CSV ({', '.join(csvio.COLUMNS)}) to FILE, or to standard "
        "output when FILE is - or omitted. The output can be given to import_servers."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", nargs="?", default="-", help="Where to write; - for stdout.")

    def handle(self, *args: Any, file: str, **options: Any) -> None:
        servers = csvio.servers_for_export()
        if file == "-":
            csvio.export_csv(servers, self.stdout)
            return
        try:
            # newline="" so the csv module's line endings reach the file untranslated.
            with open(file, "w", encoding="utf-8", newline="") as stream:
                count = csvio.export_csv(servers, stream)
        except OSError as exc:
            raise CommandError(f"{file}: {exc}") from exc
        self.stdout.write(f"exported {count} server(s) to {file}")
