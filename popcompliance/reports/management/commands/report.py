"""`manage.py report [--as-of YYYY-MM-DD] [--scope all|site:X|tag:X|policy:X] [--profile NAME]
--format pdf|csv|xlsx -o FILE`: a compliance report into a file ("-" for standard output).
A bad date, scope or profile is an error in words, and no file is written."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from popcompliance.reports.formats import FORMATS, write
from popcompliance.reports.params import SCOPE_HELP, parse_params


class Command(BaseCommand):
    help = "Write a compliance report as of a day (default today) as PDF, CSV or XLSX."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--as-of", default="", metavar="YYYY-MM-DD", help="default: today")
        parser.add_argument("--scope", default="all", help=SCOPE_HELP)
        parser.add_argument("--profile", default="", help="only servers judged by this profile")
        parser.add_argument("--format", choices=sorted(FORMATS), default="pdf")
        parser.add_argument("-o", "--output", required=True, metavar="FILE", help="- for stdout")

    def handle(self, *args: Any, **options: Any) -> None:
        now = timezone.now()
        try:
            params = parse_params(options["as_of"], options["scope"], options["profile"], now)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if options["output"] == "-":
            write(params, options["format"], now, sys.stdout.buffer)
            return
        try:
            with open(options["output"], "wb") as out:
                write(params, options["format"], now, out)
        except OSError as exc:
            raise CommandError(f"Cannot write {options['output']}: {exc.strerror}.") from None
        self.stderr.write(f"Wrote {options['output']} (as of {params.day}, scope {params.scope}).")
