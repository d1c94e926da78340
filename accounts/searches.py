"""Searches whose terms are personal data (phone numbers, emails) never travel in URLs.

A search form is POSTed; ``save`` keeps its terms under an opaque id that expires after
SAVED_SEARCH_DAYS, and the page redirects to a URL with that id (the Contact Trace at
/enterprises/<id>/devices/trace/<search id>/, lists at ?search=<search id>). Anyone of the
same enterprise (or account, for an account's lists) may open it, bookmark it and share
it; nobody else finds it. So access logs, browser history and Referer headers carry the
id, never the number or address.
"""

from __future__ import annotations

import re
from datetime import timedelta

from django.conf import settings
from django.http import Http404, HttpResponseRedirect
from django.utils import timezone

from accounts.models import Account, Enterprise, SavedSearch

MAX_TERM = 1000


_SEARCH_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")


class Expired(Exception):
    """The search existed and was the asker's to see, but its time is over."""

    def __init__(self, search: SavedSearch):
        super().__init__(search.pk)
        self.search = search


def save(request, kind: str, params: dict, *, enterprise: Enterprise | None = None,
         account: Account | None = None) -> SavedSearch:  # fmt: skip
    return SavedSearch.objects.create(
        kind=kind,
        enterprise=enterprise,
        account=account if account is not None and not account.is_public else None,
        # PostgreSQL's JSON holds no NUL; no search term is longer than a form allows.
        params={key: str(value).replace("\x00", "")[:MAX_TERM] for key, value in params.items()},
        created_by=request.user if request.user.is_authenticated else None,
        expires_at=timezone.now() + timedelta(days=settings.SAVED_SEARCH_DAYS),
    )


def find(search_id: str, kind: str, *, enterprise: Enterprise | None = None,
         account: Account | None = None) -> SavedSearch:  # fmt: skip
    """The search, for the enterprise (or account) asking; 404 if it is not theirs or not a
    search at all, Expired if it is theirs and over."""
    # Only what secrets.token_urlsafe makes: "a\x00b" (PostgreSQL stores no NUL) was a
    # DataError, a 500, for ?search= on every list page.
    if not (isinstance(search_id, str) and _SEARCH_ID.fullmatch(search_id)):
        raise Http404
    search = SavedSearch.objects.filter(
        pk=search_id,
        kind=kind,
        enterprise=enterprise,
        account=account if account is not None and not account.is_public else None,
    ).first()
    if search is None:
        raise Http404
    if search.expires_at <= timezone.now():
        raise Expired(search)
    return search


def from_query(request, kind: str, **place) -> dict | None:
    """The terms of the ``?search=<id>`` a list page was opened with: None without one, or
    when it is not this place's or has expired (the page then shows no filter)."""
    search_id = request.GET.get("search")
    if not search_id:
        return None
    try:
        return find(search_id, kind, **place).params
    except (Http404, Expired):
        return None


def open_at(url: str, search: SavedSearch) -> HttpResponseRedirect:
    """After a search is POSTed: its list, at ``?search=<id>`` (303, so a reload is a GET)."""
    return HttpResponseRedirect(f"{url}?search={search.pk}", status=303)


def page_query(request, terms: dict | None) -> str:
    """What a list's page links carry: the search it was opened with, if one applies."""
    return f"search={request.GET['search']}" if terms is not None else ""


def purge_expired() -> int:
    deleted, _ = SavedSearch.objects.filter(expires_at__lte=timezone.now()).delete()
    return deleted
