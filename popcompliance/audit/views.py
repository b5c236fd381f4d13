"""The audit log page, for admins: every recorded change, newest first, filtered. It runs a
fixed number of queries whatever the page size (pinned in tests/test_audit.py)."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from popcompliance.accounts.roles import ADMIN, role_required
from popcompliance.audit.forms import EntryFilterForm, filtered_entries

ENTRIES_PER_PAGE = 50


@role_required(ADMIN)
@require_GET
def entries(request: HttpRequest) -> HttpResponse:
    filters = EntryFilterForm(request.GET)
    found = filtered_entries(filters.criteria())
    page = Paginator(found, ENTRIES_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "audit/entries.html", {"filters": filters, "page": page})
