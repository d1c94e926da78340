"""The platform admin (Django admin) writes the same audit log as the portal.

Every ModelAdmin we register derives from ``AuditedAdmin`` (a test checks it): each object
added, changed or deleted there, including the rows of an inline such as a user's
memberships, gets an ``admin.add``/``admin.change``/``admin.delete`` row with the fields
changed and their values before and after, in the enterprise the object belongs to.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.core.exceptions import FieldDoesNotExist

from accounts.actions import audit
from accounts.models import Account, Enterprise

# Never copied into the audit log, whatever a form calls them.
_SECRET_FIELDS = ("password",)


def _value(value) -> str | list | None:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, list | tuple | set) or hasattr(value, "all"):
        items = value.all() if hasattr(value, "all") else value
        return [str(item) for item in items]
    return str(value)


def _changes(form) -> dict[str, list]:
    """{field: [before, after]} for the fields a bound form changed, secrets left out."""
    changes = {}
    for name in form.changed_data:
        if any(secret in name for secret in _SECRET_FIELDS):
            changes[name] = ["…", "…"]
            continue
        field = form.fields.get(name)
        before = form.initial.get(name)
        if field is not None and hasattr(field, "queryset") and before is not None:
            # A foreign key's initial is its id: show the object, as after.
            found = (
                field.queryset.filter(pk=before).first() if not hasattr(before, "pk") else before
            )
            before = found if found is not None else before
        changes[name] = [_value(before), _value(form.cleaned_data.get(name))]
    return changes


def _place(obj) -> tuple[Enterprise | None, Account | None]:
    """The enterprise (and account) whose audit log shows a change to ``obj``."""
    if isinstance(obj, Enterprise):
        return obj, None
    if isinstance(obj, Account):
        return obj.enterprise, None if obj.is_public else obj
    account = getattr(obj, "account", None) if hasattr(obj, "account_id") else None
    enterprise = getattr(obj, "enterprise", None) if hasattr(obj, "enterprise_id") else None
    if enterprise is None and account is not None:
        enterprise = account.enterprise
    return enterprise, account


class AuditedAdmin(admin.ModelAdmin):
    """A ModelAdmin whose every change is audited (see the module's docstring)."""

    def to_field_allowed(self, request, to_field):
        # Django looks "?_to_field=" up among the model's reverse relations too, which have
        # no primary_key: "?_to_field=memberships" (or "+") was an AttributeError, a 500.
        # Only a column of the model itself can be pointed at; anything else is refused
        # (a 400), as an unknown name is. Here because every admin we register derives
        # from this class.
        try:
            field = self.opts.get_field(to_field)
        except FieldDoesNotExist:
            return False
        if not getattr(field, "concrete", False):
            return False
        return super().to_field_allowed(request, to_field)

    def construct_change_message(self, request, form, formsets, add=False):
        # The forms are at hand only here (after the save, before log_*): keep what
        # changed, object by object, for the log_* call that follows.
        # A form without an instance (the password form) changes the object being logged.
        main = getattr(form, "instance", None)
        changed = [(main, "admin.add" if add else "admin.change", _changes(form))]
        for formset in formsets or ():
            deleted = set(map(id, getattr(formset, "deleted_forms", ())))
            for inline in formset.initial_forms:
                if inline.has_changed() and id(inline) not in deleted:
                    changed.append((inline.instance, "admin.change", _changes(inline)))
            for inline in formset.extra_forms:
                if inline.has_changed() and id(inline) not in deleted:
                    changed.append((inline.instance, "admin.add", _changes(inline)))
            for gone in getattr(formset, "deleted_objects", ()):
                changed.append((gone, "admin.delete", {}))
        request._admin_audit = changed
        return super().construct_change_message(request, form, formsets, add)

    def log_addition(self, request, obj, message):
        entry = super().log_addition(request, obj, message)
        self._audit(request, obj, "admin.add", entry)
        return entry

    def log_change(self, request, obj, message):
        entry = super().log_change(request, obj, message)
        self._audit(request, obj, "admin.change", entry)
        return entry

    def log_deletions(self, request, queryset):
        objects = list(queryset)
        entries = super().log_deletions(request, objects)
        for obj in objects:
            _write(request, obj, "admin.delete", {})
        return entries

    def _audit(self, request, obj, action: str, entry: LogEntry | None) -> None:
        changed = getattr(request, "_admin_audit", None) or [(obj, action, {})]
        request._admin_audit = None
        summary = entry.get_change_message() if entry is not None else ""
        for instance, verb, changes in changed:
            instance = obj if instance is None else instance
            if instance is obj and verb == "admin.change" and not changes and len(changed) > 1:
                continue  # only inline rows changed: each has a row of its own
            details = {"summary": summary}
            if instance is not obj:
                details["via"] = f"{obj._meta.verbose_name}: {obj}"
            _write(request, instance, verb, changes, **details)


def _write(request, obj, action: str, changes: dict, **details) -> None:
    enterprise, account = _place(obj)
    details = {"model": str(obj._meta.verbose_name), **details}
    if changes:
        details["changes"] = changes
    audit(request.user, action, enterprise=enterprise, account=account, obj=obj,
          details=details, request=request)  # fmt: skip
