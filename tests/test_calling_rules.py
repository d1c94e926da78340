"""Enterprise admins set calling windows, holidays and the attempt cap; the gate obeys."""

import datetime as dt
import html

import time_machine
from django.utils import timezone

from accounts.models import AuditEvent
from devices.models import CallingWindow, Holiday
from devices.policy import DEFER, DialRequest, PolicyGate
from tests.helpers import client_for


def test_admin_sets_windows_holidays_and_cap_and_the_gate_follows(personas):
    client = client_for(personas, "ent_admin")
    url = f"/enterprises/{personas.ent_a.pk}/calling-rules/"
    assert client.get(url).status_code == 200

    response = client.post(
        url, {"action": "window", "region": "us", "start": "09:00", "end": "18:00"}
    )
    assert response.status_code == 302
    window = CallingWindow.objects.get(enterprise=personas.ent_a, region="US")
    # Saving the same country again replaces its window.
    client.post(url, {"action": "window", "region": "US", "start": "10:00", "end": "18:00"})
    window.refresh_from_db()
    assert window.start == dt.time(10)
    assert CallingWindow.objects.filter(enterprise=personas.ent_a).count() == 1

    with time_machine.travel(dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)):  # before Christmas
        client.post(url, {"action": "holiday", "date": "2026-12-25", "region": "",
                          "name": "Christmas"})  # fmt: skip
    assert Holiday.objects.filter(enterprise=personas.ent_a, date="2026-12-25").exists()
    client.post(url, {"action": "cap", "attempt_cap": "3", "attempt_cap_days": "5"})
    personas.ent_a.refresh_from_db()
    assert (personas.ent_a.attempt_cap, personas.ent_a.attempt_cap_days) == (3, 5)

    request = DialRequest(personas.acct_a1.pk, 1, 1, "collections", "voice", "+17135554101")
    at_0930_cst = dt.datetime(2026, 12, 1, 15, 30, tzinfo=dt.UTC)
    assert PolicyGate(personas.ent_a, at_0930_cst).decide_one(request).action == DEFER
    christmas_noon = dt.datetime(2026, 12, 25, 18, 0, tzinfo=dt.UTC)
    assert PolicyGate(personas.ent_a, christmas_noon).decide_one(request).rule == "holiday"

    actions = set(
        AuditEvent.objects.filter(enterprise=personas.ent_a).values_list("action", flat=True)
    )
    assert {"calling_rules.window", "calling_rules.holiday", "calling_rules.cap"} <= actions

    delete = f"/enterprises/{personas.ent_a.pk}/calling-rules/window/{window.pk}/delete/"
    assert client.get(delete).status_code == 405  # only by POST, after the confirmation
    assert client.post(delete).status_code == 302
    assert not CallingWindow.objects.filter(pk=window.pk).exists()


def test_bad_rules_get_clear_errors(personas):
    client = client_for(personas, "ent_admin")
    url = f"/enterprises/{personas.ent_a.pk}/calling-rules/"
    body = client.post(url, {"action": "window", "region": "USA", "start": "20:00", "end": "08:00"})
    text = body.content.decode()
    assert "Use a two-letter country code such as US or BR." in text
    assert "The window must end after it starts." in text
    body = client.post(url, {"action": "cap", "attempt_cap": "3", "attempt_cap_days": "0"})
    assert "Between 1 and 90 days." in body.content.decode()
    assert not CallingWindow.objects.filter(enterprise=personas.ent_a).exists()


def test_nonsense_rules_are_refused_in_words_not_constraint_names(personas):
    # Issue 14, item 7.
    client = client_for(personas, "ent_admin")
    url = f"/enterprises/{personas.ent_a.pk}/calling-rules/"
    text = html.unescape(client.post(url, {"action": "window", "region": "US", "start": "20:00",
                                           "end": "08:00"}).content.decode())  # fmt: skip
    assert "The window must end after it starts." in text
    assert "Constraint" not in text and "window_order" not in text
    text = html.unescape(client.post(url, {"action": "window", "region": "XX", "start": "09:00",
                                           "end": "18:00"}).content.decode())  # fmt: skip
    assert "“XX” is not a country code." in text
    old = {"action": "holiday", "date": "2020-12-25", "region": "", "name": "Old"}
    text = html.unescape(client.post(url, old).content.decode())
    assert "That date has passed" in text
    far = (timezone.localdate() + dt.timedelta(days=6 * 366)).isoformat()
    text = html.unescape(client.post(url, {"action": "holiday", "date": far, "region": "BR",
                                           "name": "Far"}).content.decode())  # fmt: skip
    assert "up to 5 years ahead" in text
    assert not CallingWindow.objects.filter(enterprise=personas.ent_a).exists()
    assert not Holiday.objects.filter(enterprise=personas.ent_a).exists()


def test_other_enterprises_rules_are_out_of_reach(personas):
    window = CallingWindow.objects.create(
        enterprise=personas.ent_b, region="BR", start=dt.time(9), end=dt.time(20)
    )
    client = client_for(personas, "ent_admin")
    assert client.get(f"/enterprises/{personas.ent_b.pk}/calling-rules/").status_code == 404
    # Deleting another enterprise's window through one's own URL finds nothing.
    url = f"/enterprises/{personas.ent_a.pk}/calling-rules/window/{window.pk}/delete/"
    assert client.post(url).status_code == 404
    assert CallingWindow.objects.filter(pk=window.pk).exists()
    assert (
        client_for(personas, "acct_admin")
        .get(f"/enterprises/{personas.ent_a.pk}/calling-rules/")
        .status_code
        == 403
    )
