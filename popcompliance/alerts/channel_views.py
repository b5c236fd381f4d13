"""The alert channels' pages, for admins: the list with each channel's delivery health, adding,
editing (the URL write-only), deleting, and sending a test message.

The list runs a fixed number of queries whatever the number of channels (pinned in
tests/test_channel_views.py).
"""

from __future__ import annotations

from django.contrib import messages
from django.db.models import Count, Max, OuterRef, Q, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from kombu.exceptions import OperationalError as BrokerError

from popcompliance.accounts.roles import ADMIN, role_required
from popcompliance.alerts import tasks
from popcompliance.alerts.forms import ChannelForm
from popcompliance.alerts.messages import queue_test
from popcompliance.alerts.models import Channel, Notification, NotificationStatus


def with_health(channels: QuerySet[Channel]) -> QuerySet[Channel]:
    """Each channel with its messages waiting after a failed try, when one last went through,
    and the newest waiting message's error: one query."""
    retrying = Q(notifications__status=NotificationStatus.PENDING) & ~Q(
        notifications__last_error=""
    )
    newest_error = (
        Notification.objects.filter(channel=OuterRef("pk"), status=NotificationStatus.PENDING)
        .exclude(last_error="")
        .order_by("-created_at", "-id")
        .values("last_error")[:1]
    )
    return channels.select_related("tag").annotate(
        retrying=Count("notifications", filter=retrying),
        last_sent_at=Max("notifications__sent_at"),
        retry_error=Subquery(newest_error),
    )


@role_required(ADMIN)
@require_GET
def channel_list(request: HttpRequest) -> HttpResponse:
    context = {"channels": with_health(Channel.objects.all()).order_by("name")}
    return render(request, "alerts/channels.html", context)


@role_required(ADMIN)
@require_http_methods(["GET", "POST"])
def channel_add(request: HttpRequest) -> HttpResponse:
    return _channel_form(request, Channel())


@role_required(ADMIN)
@require_http_methods(["GET", "POST"])
def channel_edit(request: HttpRequest, pk: int) -> HttpResponse:
    return _channel_form(request, get_object_or_404(Channel, pk=pk))


def _channel_form(request: HttpRequest, channel: Channel) -> HttpResponse:
    form = ChannelForm(request.POST or None, instance=channel)
    if request.method == "POST" and form.is_valid():
        saved = form.save()
        messages.success(request, f"Saved the channel {saved}.")
        return redirect("alerts:channel_list")
    return render(request, "alerts/channel_form.html", {"form": form, "channel": channel})


@role_required(ADMIN)
@require_http_methods(["GET", "POST"])
def channel_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """GET asks for confirmation; POST deletes the channel and the messages queued for it."""
    channel = get_object_or_404(Channel, pk=pk)
    if request.method == "POST":
        channel.delete()
        messages.success(request, f"Deleted the channel {channel}.")
        return redirect("alerts:channel_list")
    waiting = channel.notifications.filter(status=NotificationStatus.PENDING).count()
    context = {"channel": channel, "waiting": waiting}
    return render(request, "alerts/channel_confirm_delete.html", context)


@role_required(ADMIN)
@require_POST
def channel_test(request: HttpRequest, pk: int) -> HttpResponse:
    """Queue a test message to the channel and ask a worker to deliver it now; its outcome
    shows on the list a moment later."""
    channel = get_object_or_404(Channel, pk=pk)
    if not channel.enabled:
        messages.warning(request, f"{channel} is disabled: enable it first.")
        return redirect("alerts:channel_list")
    queue_test(channel, request.user.get_username(), timezone.now())
    try:
        tasks.deliver.delay()
    except BrokerError:
        # The message is in the outbox all the same: beat's delivery run takes it.
        messages.warning(request, "The task queue is down: the test goes out with the next run.")
    messages.success(
        request, f"A test message to {channel} is queued; reload to see whether it went through."
    )
    return redirect("alerts:channel_list")
