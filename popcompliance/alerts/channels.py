"""Alert channels besides email: Apprise URLs (Teams Workflows, Slack, Mattermost, a generic
JSON webhook, and whatever else Apprise knows), checked when saved, shown redacted, and sent
with a verdict the outbox can act on. No database access here.

Apprise's notify() answers only True or False, but whether a failure is worth retrying depends
on what the far end said. An HTTP 4xx other than 408 (Request Timeout) and 429 (Too Many
Requests) means the request itself is wrong (a deleted webhook, a revoked token, a payload the
service refuses): repeating it cannot help, so it is permanent. A 5xx, a 408 or 429, a refused
connection or a timeout may pass: transient, retried with the outbox's backoff. To tell them
apart, every HTTP exchange the plugin makes through `requests` (as all of Apprise's HTTP
plugins do) is observed while it sends, in this thread only, and the last one decides. A
plugin that speaks no HTTP (email, syslog, MQTT…) leaves only its bool: its failures count as
transient, with the warning Apprise logged as the reason.

A request that timed out waiting for the answer may have arrived: the retry may then deliver
it twice. Every message carries its outbox row's Message-ID (`X-PopCompliance-Message-Id` on
the generic json/xml/form webhooks) so a receiver can fold the repeat.

Errors are worded without the URL's path, query or credentials, which hold the webhook's
secret: admins read them, and the URL is write-only.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import apprise
import requests
from apprise import NotifyFormat, NotifyType

MESSAGE_ID_HEADER = "X-PopCompliance-Message-Id"
MAX_URL_LENGTH = 2000
# The generic webhooks, whose scheme without the final "s" is plain HTTP: a password in their
# URL would cross the network in the clear.
CLEARTEXT_SCHEMES = frozenset({"json", "xml", "form"})
# Statuses of the 4xx class that say "later", not "never".
RETRYABLE_4XX = frozenset({408, 429})
# How much of a refusal's body an error quotes.
BODY_QUOTED = 200
_SERVICES_HELP = "https://appriseit.com/services/"
# A secret-looking piece of a URL: any run of the characters between its delimiters.
_URL_PIECES = re.compile(r"[^/?&=:@#;,+]+")


@dataclass(frozen=True)
class Checked:
    """An accepted URL: the service Apprise names for it, and the form shown back."""

    service: str
    redacted: str


@dataclass(frozen=True)
class Outcome:
    """One try to send. `unreachable`: the far end could not be talked to at all (refused,
    timed out), so the other messages queued for it now would fare the same."""

    delivered: bool
    permanent: bool = False
    error: str = ""
    unreachable: bool = False


def asset() -> apprise.AppriseAsset:
    """No persistent storage: a worker keeps nothing of Apprise's on disk."""
    return apprise.AppriseAsset(storage_mode="memory", app_id="PopCompliance")


def check_url(url: str) -> Checked:
    """The URL as a channel would use it; ValueError with the reason, worded for the admin,
    when Apprise would not send to it or it would send a password in the clear."""
    url = url.strip()
    if not url:
        raise ValueError("Give the channel's Apprise URL.")
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"The URL is longer than {MAX_URL_LENGTH} characters.")
    with apprise_warnings() as warnings:
        plugin = apprise.Apprise.instantiate(url, asset=asset())
    if plugin is None:
        why = f" Apprise says: {scrub(warnings[-1], url)}" if warnings else ""
        raise ValueError(
            "Apprise does not accept this URL: check its scheme (jsons://, slack://, "
            f"workflows://, mmosts://…) and its parts ({_SERVICES_HELP}).{why}"
        )
    if plugin.password and not plugin.secure and scheme_of(url) in CLEARTEXT_SCHEMES:
        raise ValueError(
            f"{scheme_of(url)}:// would send this URL's password in the clear: use "
            f"{scheme_of(url)}s:// (HTTPS)."
        )
    return Checked(service=str(plugin.service_name), redacted=redact(url, plugin))


def scheme_of(url: str) -> str:
    return url.partition("://")[0].strip().lower()


def redact(url: str, plugin: Any) -> str:
    """`scheme://host/…`: the host only where it is a host name the admin chose (not a token
    in the host's place, as in slack://TOKEN/…), never the user, password, path or query."""
    scheme = scheme_of(url)
    host = _shown_host(url, plugin)
    return f"{scheme}://{host}/…" if host else f"{scheme}://…"


def _shown_host(url: str, plugin: Any) -> str:
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return ""
    names_a_host = scheme_of(url) in ("http", "https") or "host" in plugin.template_tokens
    # A name with a dot or an address: "topic" (ntfy) or "T000" (a Slack token) is no host.
    if not names_a_host or not re.fullmatch(r"[a-z0-9.-]*\.[a-z0-9.-]*|[0-9a-f:]+", host):
        return ""
    return f"{host}:{port}" if port else host


def scrub(text: str, url: str) -> str:
    """`text` without any piece of `url` after its host (path, query, user, password): those
    hold the webhook's secret. Pieces of fewer than four characters ("api", "v1") stay."""
    try:
        parts = urlsplit(url)
        secret = url.replace(f"{parts.scheme}://", "", 1)
        host = parts.hostname or ""
    except ValueError:
        secret, host = url, ""
    pieces = {piece for piece in _URL_PIECES.findall(secret) if len(piece) >= 4 and piece != host}
    for piece in sorted(pieces, key=len, reverse=True):
        text = text.replace(piece, "…")
    return text


# ---------------------------------------------------------------------------------------------
# Sending


NOTIFY_TYPES = {
    "alert": NotifyType.FAILURE,
    "recovery": NotifyType.SUCCESS,
    "reminder": NotifyType.WARNING,
    "flapping": NotifyType.WARNING,
    "expiry": NotifyType.WARNING,
}


def send(url: str, title: str, body: str, kind: str, message_id: str, timeout: float) -> Outcome:
    """Send one Markdown message; what became of it. `timeout` bounds connecting and then
    waiting for the answer (seconds), unless the URL sets its own (cto=, rto=)."""
    try:
        plugin = apprise.Apprise.instantiate(url, asset=asset())
    except Exception as exc:  # Apprise's own bug on a URL it accepted when it was saved.
        return Outcome(False, error=f"Apprise cannot load this URL: {type(exc).__name__}")
    if plugin is None:
        # Accepted when saved: an Apprise upgrade or a lost plugin dependency. Ours to fix.
        return Outcome(False, error="Apprise no longer accepts this channel's URL")
    _bound_timeouts(plugin, timeout)
    if isinstance(getattr(plugin, "headers", None), dict):
        plugin.headers.setdefault(MESSAGE_ID_HEADER, message_id)
    notify_type = NOTIFY_TYPES.get(kind, NotifyType.INFO)
    with observing() as exchanges, apprise_warnings() as warnings:
        try:
            sent = plugin.notify(
                body=body, title=title, notify_type=notify_type, body_format=NotifyFormat.MARKDOWN
            )
        except Exception as exc:  # a plugin's own bug: say which, and retry
            return Outcome(False, error=scrub(f"{type(exc).__name__}: {exc}", url)[:2000])
    if sent:
        return Outcome(True)
    return judge(exchanges, warnings, str(plugin.service_name), timeout, url)


def _bound_timeouts(plugin: Any, timeout: float) -> None:
    """Our timeout, unless the admin set the plugin's own in the URL (cto=, rto=)."""
    defaults = apprise.URLBase.socket_connect_timeout, apprise.URLBase.socket_read_timeout
    if (plugin.socket_connect_timeout, plugin.socket_read_timeout) == defaults:
        plugin.socket_connect_timeout = plugin.socket_read_timeout = timeout


def judge(
    exchanges: list[requests.Response | requests.RequestException],
    warnings: list[str],
    service: str,
    timeout: float,
    url: str,
) -> Outcome:
    """A failed send, judged by the last HTTP exchange; without one, by Apprise's warning."""
    if not exchanges:
        said = f": {warnings[-1]}" if warnings else ""
        return Outcome(False, error=scrub(f"{service} did not deliver{said}", url)[:2000])
    last = exchanges[-1]
    if isinstance(last, requests.RequestException):
        return Outcome(False, error=scrub(network_error(last, timeout), url), unreachable=True)
    return answered(last, service, url)


def answered(response: requests.Response, service: str, url: str) -> Outcome:
    code = response.status_code
    status = f"HTTP {code} {response.reason or ''}".rstrip()
    quoted = " ".join((response.text or "").split())[:BODY_QUOTED]
    said = scrub(f"{status}: {quoted}" if quoted else status, url)
    if 200 <= code < 300:
        # It answered yes, yet the plugin disagrees (an error in the body, say): sending again
        # would most likely repeat a message that arrived.
        return Outcome(False, permanent=True, error=f"{service} answered {said} (not delivered)")
    if code >= 500 or code in RETRYABLE_4XX:
        return Outcome(False, error=said)
    return Outcome(False, permanent=True, error=f"refused for good: {said}")


def network_error(error: requests.RequestException, timeout: float) -> str:
    """What went wrong below HTTP, in words, without the URL `requests` puts in its messages."""
    if isinstance(error, requests.ConnectTimeout):
        return f"could not connect within {timeout:g} s"
    if isinstance(error, requests.Timeout):
        return (
            f"no answer within {timeout:g} s (the request may have arrived: the retry carries "
            "the same message id)"
        )
    if isinstance(error, requests.exceptions.SSLError):
        return f"TLS failed: {_root_cause(error)}"
    return f"cannot connect: {_root_cause(error)}"


def _root_cause(error: BaseException) -> str:
    """The innermost operating-system error's words ("Connection refused"), else the class."""
    seen: set[int] = set()
    found = ""
    pending: list[Any] = [error]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            found = current.strerror
        pending.extend([current.__cause__, current.__context__, *current.args])
        pending.append(getattr(current, "reason", None))
    return found or type(error).__name__


# ---------------------------------------------------------------------------------------------
# Observing what the plugin does


_local = threading.local()
_install_lock = threading.Lock()


@contextmanager
def observing() -> Iterator[list[requests.Response | requests.RequestException]]:
    """Collect each HTTP response (or error) `requests` gives this thread meanwhile."""
    _install_observer()
    exchanges: list[requests.Response | requests.RequestException] = []
    _local.exchanges = exchanges
    try:
        yield exchanges
    finally:
        _local.exchanges = None


def _install_observer() -> None:
    """Wrap requests.Session.send once per process. Outside `observing`, and in every other
    thread, the wrapper only calls the original."""
    with _install_lock:
        if not getattr(requests.Session.send, "_popc_observer", False):
            requests.Session.send = _observed(requests.Session.send)  # type: ignore[method-assign]


def _observed(original: Any) -> Any:

    @functools.wraps(original)
    def send(session: requests.Session, request: Any, **kwargs: Any) -> requests.Response:
        exchanges = getattr(_local, "exchanges", None)
        if exchanges is None:
            return original(session, request, **kwargs)
        try:
            response = original(session, request, **kwargs)
        except requests.RequestException as exc:
            exchanges.append(exc)
            raise
        exchanges.append(response)
        return response

    send._popc_observer = True  # type: ignore[attr-defined]
    return send


class _ThreadWarnings(logging.Handler):
    """Apprise's warnings, of one thread."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.messages.append(record.getMessage())


@contextmanager
def apprise_warnings() -> Iterator[list[str]]:
    handler = _ThreadWarnings()
    logger = logging.getLogger("apprise")
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)
