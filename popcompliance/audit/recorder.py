"""Writes the audit log from model signals, on the change's own database connection: an entry
is part of the transaction of the change it describes, so a change rolled back leaves none.

- pre_save reads the stored values of the audited fields the save writes, in one query. A save
  whose `update_fields` names none of them (every save of the scan pipeline) is not looked at:
  no query, no entry.
- post_save records "created" with the new object's values, or the fields that changed.
- post_delete records "deleted" with the values the object had.
- m2m_changed reads the relation's names before and after (one query each) and records the
  difference on the object that owns the relation.

Changes of one object in one scope (a request, a command) join one entry: a form saves a
server, creates the tags it names, then sets them, and the log shows the new tags and one
edit of the server. Queryset `.update()` sends no signal, so audited fields are never changed
that way (see PolicyForm.save).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from axes.handlers.proxy import AxesProxyHandler
from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.db.models import Model, signals
from django.http import HttpRequest

from popcompliance.accounts import sso_settings
from popcompliance.accounts.sso import refusal_of
from popcompliance.audit.context import Scope, current_scope
from popcompliance.audit.models import Action, AuditEntry
from popcompliance.audit.registry import (
    REDACTED_FIELDS,
    USER,
    Audited,
    Tracked,
    audited,
    audited_models,
)

# Where pre_save and pre_* m2m signals leave what post_* compares with, on the instance.
_STORED = "_audit_stored"
_RELATION_BEFORE = "_audit_relation_before"
# Actions a later change of the same object may join.
_OPEN_ACTIONS = (Action.CREATED, Action.CHANGED, Action.PASSWORD_CHANGED)


@dataclass(frozen=True)
class Relation:
    """An audited many-to-many field: who owns it, and its through table's two columns."""

    model: type[Model]
    spec: Audited
    tracked: Tracked
    through: type[Model]
    source: str  # the through table's column pointing at the owner (server)
    target: str  # ... and at the related object (tag)

    def names(self, owner_ids: list[int]) -> dict[int, list[str]]:
        """The sorted names related to each owner (one query)."""
        found: dict[int, list[str]] = {owner: [] for owner in owner_ids}
        if owner_ids:
            rows = self.through._default_manager.filter(**{f"{self.source}__in": owner_ids})
            for owner, name in rows.values_list(
                self.source, f"{self.target}__{self.tracked.shown_as}"
            ):
                found[owner].append(name)
        return {owner: sorted(names) for owner, names in found.items()}


_relations: dict[type[Model], Relation] = {}


def connect() -> None:
    """Connect the receivers (AuditConfig.ready). Saves and deletes are received for every
    model and filtered here, so proxies (the admin's TokenProxy) are audited too."""
    signals.pre_save.connect(remember_stored_values, dispatch_uid="audit.pre_save")
    signals.post_save.connect(record_save, dispatch_uid="audit.post_save")
    signals.post_delete.connect(record_delete, dispatch_uid="audit.post_delete")
    for model, spec in audited_models().items():
        for tracked in spec.many:
            field = model._meta.get_field(tracked.name)
            through = field.remote_field.through  # type: ignore[union-attr]
            source, target = field.m2m_field_name(), field.m2m_reverse_field_name()  # type: ignore[union-attr]
            _relations[through] = Relation(model, spec, tracked, through, source, target)
            signals.m2m_changed.connect(
                record_relation_change, sender=through, dispatch_uid=f"audit.{through._meta.label}"
            )
    user_locked_out.connect(record_lockout, dispatch_uid="audit.user_locked_out")
    user_logged_in.connect(record_sign_in, dispatch_uid="audit.user_logged_in")
    user_login_failed.connect(record_sign_in_failure, dispatch_uid="audit.user_login_failed")


def remember_stored_values(
    sender: type[Model], instance: Model, raw: bool = False, update_fields: Any = None, **_: Any
) -> None:
    spec = audited(sender)
    if spec is None or raw or instance._state.adding:
        return
    watched = [
        tracked
        for tracked in spec.fields
        if update_fields is None or {tracked.name, tracked.attname} & set(update_fields)
    ]
    if watched:
        instance.__dict__[_STORED] = (watched, stored_values(sender, instance.pk, watched))


def stored_values(model: type[Model], pk: Any, tracked: list[Tracked]) -> dict[str, Any] | None:
    """The row's values of the tracked fields, with the names of related objects (one query)."""
    columns = {t.attname for t in tracked} | {t.shown_path for t in tracked}
    return model._base_manager.filter(pk=pk).values(*columns).first()


def record_save(
    sender: type[Model], instance: Model, created: bool, raw: bool = False, **_: Any
) -> None:
    spec = audited(sender)
    if spec is None or raw:
        return
    if created:
        record_change(
            Action.CREATED,
            spec,
            instance,
            {k: [None, v] for k, v in values_of(spec, instance).items()},
        )
        return
    tracked, stored = instance.__dict__.pop(_STORED, ([], None))
    if stored is None:
        return
    changes = differences(instance, tracked, stored)
    if changes:
        record_change(action_for(changes), spec, instance, changes)


def record_delete(sender: type[Model], instance: Model, **_: Any) -> None:
    spec = audited(sender)
    if spec is not None:
        values = values_of(spec, instance)
        record_change(Action.DELETED, spec, instance, {k: [v, None] for k, v in values.items()})


def values_of(spec: Audited, instance: Model) -> dict[str, Any]:
    """The object's values worth recording at its creation or deletion (empty ones left out)."""
    values = {}
    for tracked in spec.fields:
        value = shown_value(instance, tracked)
        if value not in (None, "", []):
            values[tracked.label] = "(set)" if tracked.name in REDACTED_FIELDS else value
    return values


def shown_value(instance: Model, tracked: Tracked) -> Any:
    """The value as the log shows it: a related object by its name, not its id."""
    if not tracked.shown_as:
        return column_value(instance, tracked)
    related = getattr(instance, tracked.name)
    return None if related is None else getattr(related, tracked.shown_as)


def column_value(instance: Model, tracked: Tracked) -> Any:
    """The value the save writes to the column (a related object's id), in the type the
    stored row is read back in."""
    field = instance._meta.get_field(tracked.name)
    return field.to_python(getattr(instance, tracked.attname))


def differences(
    instance: Model, tracked: list[Tracked], stored: dict[str, Any]
) -> dict[str, list[Any]]:
    """{label: [old, new]} for each tracked field whose value the save changes."""
    changes = {}
    for field in tracked:
        if stored[field.attname] == column_value(instance, field):
            continue
        if field.name == "password" and getattr(instance, "_password", None) is None:
            # Django rehashes a password at sign-in when its hasher changed, without
            # set_password(); like Django's own password_changed(), that is no new password.
            continue
        old, new = stored[field.shown_path], shown_value(instance, field)
        changes[field.label] = redacted(old, new) if field.name in REDACTED_FIELDS else [old, new]
    return changes


def redacted(old: Any, new: Any) -> list[str]:
    """A secret's change in words: whether there was one, and what became of it."""
    after = "(removed)" if not new else "(changed)" if old else "(set)"
    return ["(set)" if old else "(none)", after]


def action_for(changes: dict[str, Any]) -> str:
    return Action.PASSWORD_CHANGED if "password" in changes else Action.CHANGED


def record_relation_change(
    sender: type[Model],
    instance: Model,
    action: str,
    reverse: bool,
    pk_set: set[Any] | None,
    **_: Any,
) -> None:
    relation = _relations[sender]
    stage = action.partition("_")[0]
    if stage == "pre":
        owners = owners_of(relation, instance, reverse, pk_set)
        instance.__dict__[_RELATION_BEFORE] = (owners, relation.names(owners))
        return
    owners, before = instance.__dict__.pop(_RELATION_BEFORE, ([], {}))
    after = relation.names(owners)
    changed = [owner for owner in owners if before[owner] != after[owner]]
    objects = (
        {instance.pk: instance} if not reverse else relation.model._base_manager.in_bulk(changed)
    )
    label = relation.tracked.label
    for owner in changed:
        change = {label: [before[owner], after[owner]]}
        record_change(Action.CHANGED, relation.spec, objects[owner], change)


def owners_of(
    relation: Relation, instance: Model, reverse: bool, pk_set: set[Any] | None
) -> list[int]:
    """The objects whose relation changes: `instance`, or from the other side (tag.servers.add)
    the objects named, or all of them when it is cleared."""
    if not reverse:
        return [instance.pk]
    if pk_set is not None:
        return sorted(pk_set)
    rows = relation.through._default_manager.filter(**{relation.target: instance.pk})
    return list(rows.values_list(relation.source, flat=True))


def record_change(action: str, spec: Audited, instance: Model, changes: dict[str, Any]) -> None:
    """Write the entry, or join it to the entry the scope wrote for the same object, unless
    that one recorded its deletion."""
    object_id, label = spec.identify(instance)
    scope, key = current_scope(), (spec.object_type, object_id)
    earlier = scope.open_entries.get(key)
    if earlier is not None and joins(action, earlier) and join(earlier, changes, label):
        return
    entry = new_entry(scope, action, *key, label, changes)
    entry.save()
    scope.open_entries[key] = entry


def joins(action: str, earlier: AuditEntry) -> bool:
    """Whether a change joins the earlier entry of its object: a deletion stands alone."""
    return action in (Action.CHANGED, Action.PASSWORD_CHANGED) and earlier.action in _OPEN_ACTIONS


def join(entry: AuditEntry, changes: dict[str, Any], label: str) -> bool:
    """Fold `changes` into `entry`; False when the entry is gone (its transaction was rolled
    back, or everything it recorded was changed back), so the caller writes a new one."""
    merged = joined(entry.changes, changes)
    action = entry.action if entry.action == Action.CREATED else action_for(merged)
    rows = AuditEntry.objects.filter(pk=entry.pk)
    if not merged and action != Action.CREATED:
        # Changed and changed back in one request: nothing happened, so no entry either (a
        # later change in the scope finds the entry gone and writes its own).
        entry.changes = merged
        return bool(rows.delete()[0])
    if not rows.update(changes=merged, action=action, object_label=label):
        return False
    entry.changes, entry.action, entry.object_label = merged, action, label
    return True


def joined(earlier: dict[str, list[Any]], later: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """Changes in a row as one: each field from its first old value to its last new one; a
    field back where it started drops out."""
    merged = dict(earlier)
    for label, (old, new) in later.items():
        first = earlier[label][0] if label in earlier else old
        if first == new:
            merged.pop(label, None)
        else:
            merged[label] = [first, new]
    return merged


def new_entry(
    scope: Scope,
    action: str,
    object_type: str,
    object_id: int | None,
    object_label: str,
    changes: dict[str, Any],
) -> AuditEntry:
    """An entry of `scope`'s actor and source, not saved yet."""
    actor, actor_label = scope.actor()
    return AuditEntry(
        actor_id=getattr(actor, "pk", None),
        actor_label=actor_label[:150],
        source=scope.source,
        remote_address=scope.remote_address,
        action=action,
        object_type=object_type,
        object_id=object_id,
        object_label=object_label[:255],
        changes=changes,
    )


def record_many(spec: Audited, changes_of: list[tuple[str, Model, dict[str, Any]]]) -> None:
    """Write one entry per (action, object, changes) in one query, for changes made in bulk
    (a large CSV import), which send no signal. Each object must appear once: nothing joins."""
    scope = current_scope()
    entries = []
    for action, instance, changes in changes_of:
        object_id, label = spec.identify(instance)
        entries.append(new_entry(scope, action, spec.object_type, object_id, label, changes))
    AuditEntry.objects.bulk_create(entries)


def shown_values(spec: Audited, instance: Model) -> dict[str, Any]:
    """Every tracked field's value as the log shows it, by label (secrets as set or not)."""
    values = {}
    for tracked in spec.fields:
        value = shown_value(instance, tracked)
        values[tracked.label] = (
            ("(set)" if value else None) if tracked.name in REDACTED_FIELDS else value
        )
    return values


def record_lockout(sender: Any, username: str | None = None, **_: Any) -> None:
    """django-axes locked out `username` (or the address) after repeated failed sign-ins.

    Axes sends this inside authenticate(), so inside the request's scope (AuditMiddleware runs
    before AxesMiddleware and the view), and its `ip_address` is our client_ip(), the address
    that scope records."""
    user_id = _user_id(username) if username else None
    label = username or "(no username)"
    new_entry(current_scope(), Action.LOCKED_OUT, USER.object_type, user_id, label, {}).save()


def record_unlock(label: str, object_id: int | None = None) -> None:
    """An admin lifted a sign-in lockout: an account's (from every address; `label` its
    username, `object_id` its pk), or a client address's (for every username)."""
    new_entry(current_scope(), Action.UNLOCKED, USER.object_type, object_id, label, {}).save()


def _user_id(username: str) -> int | None:
    """The account of that name; None when the name matches none (an attacker guessing)."""
    users = get_user_model()._default_manager
    return (
        users.filter(**{users.model.USERNAME_FIELD: username}).values_list("pk", flat=True).first()
    )


# How each authentication backend signs people in, as the log says it.
METHOD_OF_BACKEND = {
    sso_settings.LOCAL_BACKEND: "password",
    sso_settings.LDAP_BACKEND: "LDAP",
    sso_settings.OIDC_BACKEND: "OpenID Connect",
}
# Django's authenticate() sends user_login_failed as this sender; other senders (the password
# change form) report a wrong password of someone already signed in.
SIGN_IN_SENDER = "django.contrib.auth"


def record_sign_in(sender: Any, request: HttpRequest | None, user: Any, **_: Any) -> None:
    """Someone signed in through the web: with which method.

    Only inside a request's scope: the test client's login() and code calling login() outside
    a request are nobody signing in."""
    scope = current_scope()
    if scope.request is None:
        return
    method = METHOD_OF_BACKEND.get(getattr(user, "backend", ""), "other")
    changes = {"method": [None, method]}
    label = user.get_username()
    new_entry(scope, Action.SIGNED_IN, USER.object_type, user.pk, label, changes).save()


def record_sign_in_failure(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **_: Any
) -> None:
    """A sign-in through the web failed: the username tried (when there was one), the method,
    and why, when the method said (popcompliance.accounts.sso.refuse). A failure that locks
    the client out, or comes while it is, is left to the lockout's own entry (axes' receiver
    has counted it by now: it connected first)."""
    scope = current_scope()
    if sender != SIGN_IN_SENDER or scope.request is None or request is None:
        return
    if AxesProxyHandler.is_locked(request, credentials):
        return
    reason = refusal_of(request) or default_reason(credentials)
    record_failed_sign_in(failed_method(credentials), reason, credentials.get("username"))


def record_failed_sign_in(method: str, reason: str, username: str | None = None) -> None:
    """A failed sign-in in the current scope; also for failures that never reach
    authenticate() (an identity provider answering with an error)."""
    changes = {"method": [None, method], "reason": [None, reason]}
    user_id = _user_id(username) if username else None
    label = username or "(unknown)"
    scope = current_scope()
    new_entry(scope, Action.SIGN_IN_FAILED, USER.object_type, user_id, label, changes).save()


def failed_method(credentials: dict[str, Any]) -> str:
    """The methods a failed sign-in went through: a password is tried locally and against
    the directory, whichever are on; anything else is OpenID Connect's code exchange."""
    if "username" not in credentials:
        return METHOD_OF_BACKEND[sso_settings.OIDC_BACKEND]
    tried = [
        METHOD_OF_BACKEND[backend]
        for backend in (sso_settings.LOCAL_BACKEND, sso_settings.LDAP_BACKEND)
        if backend in settings.AUTHENTICATION_BACKENDS
    ]
    return " or ".join(tried) or "password (no password method is on)"


def default_reason(credentials: dict[str, Any]) -> str:
    if "username" in credentials:
        return "wrong username or password"
    return "refused"
