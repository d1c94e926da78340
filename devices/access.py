"""Objects of the compliance core, for the person asking (built on accounts.access).

Views name an object by an id a person sent; they get it here, scoped to what the
person's access was checked for: "not yours" is a 404, never another enterprise's row.
"""

from __future__ import annotations

from django.http import Http404

from accounts.access import pk_or_404
from accounts.models import Account, Enterprise
from devices.models import (
    Attempt,
    CallingWindow,
    DeviceSetting,
    Holiday,
    RecordingState,
    RegistryImport,
)


def _found(obj):
    if obj is None:
        raise Http404
    return obj


def get_setting_for(enterprise: Enterprise, setting_id) -> DeviceSetting:
    """Any row of one of this enterprise's devices."""
    return _found(
        DeviceSetting.objects.filter(enterprise=enterprise, pk=pk_or_404(setting_id)).first()
    )


def get_calling_window_for(enterprise: Enterprise, window_id) -> CallingWindow:
    return _found(
        CallingWindow.objects.filter(enterprise=enterprise, pk=pk_or_404(window_id)).first()
    )


def get_holiday_for(enterprise: Enterprise, holiday_id) -> Holiday:
    return _found(Holiday.objects.filter(enterprise=enterprise, pk=pk_or_404(holiday_id)).first())


def get_recording_for_user(
    attempt_id, *, enterprise: Enterprise | None = None, account: Account | None = None
) -> Attempt:
    """The attempt with a stored recording, if it belongs to the enterprise or account the
    caller's access was checked for (accounts.access); 404 otherwise."""
    pk = pk_or_404(attempt_id)
    attempts = Attempt.objects.filter(pk=pk, recording_state=RecordingState.STORED)
    if account is not None:
        attempts = attempts.filter(account_id=account.pk)
    elif enterprise is not None:
        attempts = attempts.filter(enterprise_id=enterprise.pk)
    else:
        raise Http404
    attempt = attempts.first()
    if attempt is None or not attempt.recording_file:
        raise Http404
    return attempt


def get_import_for_operator(import_id) -> RegistryImport:
    """A registry import, for platform operators (see accounts.access.operator_view)."""
    return _found(
        RegistryImport.objects.select_related("registry").filter(pk=pk_or_404(import_id)).first()
    )
