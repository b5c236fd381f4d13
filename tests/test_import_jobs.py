"""A CSV upload larger than POPC_IMPORT_INLINE_ROWS: imported by a real Celery worker on the
tests' Redis, its progress and report on a page of its own; and the task on its own."""

from __future__ import annotations

from datetime import timedelta

from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from popcompliance.audit.models import AuditEntry
from popcompliance.inventory.models import IMPORT_TIME_LIMIT, ImportJob, ImportState, Server
from popcompliance.inventory.tasks import import_servers

ROWS = 600  # over the default POPC_IMPORT_INLINE_ROWS (500)


def big_file(bad_line: int | None = None) -> SimpleUploadedFile:
    """ROWS servers; the row on `bad_line` (the header is line 1) has a port out of range."""
    lines = ["name,host,pop3_port,tags"]
    for n in range(2, ROWS + 2):
        port = "70000" if n == bad_line else "110"
        lines.append(f"m{n:04},h{n}.example.com,{port},big")
    return SimpleUploadedFile("fleet.csv", ("\n".join(lines) + "\n").encode(), "text/csv")


def test_a_large_upload_is_imported_by_a_worker_with_progress_and_the_refused_line(
    celery_processes, admin
):
    response = admin.post(reverse("inventory:server_import"), {"file": big_file(bad_line=77)})
    job = ImportJob.objects.get()
    assert response["Location"] == job.get_absolute_url()
    page = admin.get(job.get_absolute_url()).content.decode()
    assert 'http-equiv="refresh"' in page and "this page follows it" in page
    celery_processes.worker("w1")
    celery_processes.wait_until(
        lambda: ImportJob.objects.get().finished, 60, "the worker finished the import"
    )
    job.refresh_from_db()
    assert (job.state, job.created, job.done_rows, job.total_rows) == ("done", ROWS - 1, ROWS, ROWS)
    assert job.errors == [[77, "pop3_port: must be between 1 and 65535, not 70000"]]
    assert job.text == ""  # the upload is not kept once imported
    assert Server.objects.filter(tags__name="big").count() == ROWS - 1
    page = admin.get(job.get_absolute_url()).content.decode()
    assert 'http-equiv="refresh"' not in page
    assert "created 599" in page and "<td>77</td>" in page
    entries = AuditEntry.objects.filter(object_type="server", action="created")
    assert set(entries.values_list("actor_label", flat=True)) == {"admin-user"}


def test_a_large_upload_while_the_queue_is_down_says_so_and_imports_nothing(
    transactional_db, redis_broker, admin
):
    redis_broker.stop()
    try:
        response = admin.post(reverse("inventory:server_import"), {"file": big_file()}, follow=True)
    finally:
        redis_broker.start()
    job = ImportJob.objects.get()
    assert job.state == ImportState.FAILED
    assert "The task queue did not take the import" in response.content.decode()
    assert not Server.objects.exists()


def test_the_task_runs_a_job_once(db):
    job = ImportJob.objects.create(text="name,host\nm1,h1.example.com\n", total_rows=1)
    assert import_servers(job.pk) == "created 1, updated 0, unchanged 0, errors 0"
    assert import_servers(job.pk) == "not queued"
    job.refresh_from_db()
    assert (job.state, job.created, job.done_rows) == ("done", 1, 1)


def test_a_file_the_task_cannot_read_fails_the_job_with_the_reason(db):
    job = ImportJob.objects.create(text="nom,hote\nm1,h1\n", total_rows=1)
    assert import_servers(job.pk) == "refused"
    job.refresh_from_db()
    assert job.state == ImportState.FAILED
    assert job.failure.startswith("unknown column(s) 'nom', 'hote' in the header")
    assert not Server.objects.exists()


def test_only_admins_see_an_import(db, viewer, operator):
    job = ImportJob.objects.create(text="", total_rows=0)
    for client in (viewer, operator):
        assert client.get(job.get_absolute_url()).status_code == 403


def test_a_job_whose_worker_died_is_taken_over_by_the_next_delivery_and_said_so(db, admin):
    text = "name,host\nm1,h1.example.com\n"
    running = ImportJob.objects.create(text=text, total_rows=1, state=ImportState.RUNNING)
    ImportJob.objects.filter(pk=running.pk).update(started_at=timezone.now() - timedelta(minutes=5))
    assert import_servers(running.pk) == "not queued"  # its worker may still be at it
    long_ago = timezone.now() - IMPORT_TIME_LIMIT - timedelta(minutes=1)
    ImportJob.objects.filter(pk=running.pk).update(started_at=long_ago)
    page = admin.get(running.get_absolute_url()).content.decode()
    assert "stopped before the end" in page and 'http-equiv="refresh"' not in page
    assert import_servers(running.pk) == "created 1, updated 0, unchanged 0, errors 0"
    assert ImportJob.objects.get(pk=running.pk).state == ImportState.DONE
