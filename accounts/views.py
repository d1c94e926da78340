from __future__ import annotations

import zoneinfo
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from accounts import searches, throttle
from accounts.access import (
    account_view,
    accounts_for_user,
    enterprise_view,
    enterprises_for_user,
    get_account_for_user,
    mark_signed_in,
    needs_sign_in,
)
from accounts.actions import client_ip, do_sign_in_to_account
from accounts.forms import AuditFilterForm, ThrottledLoginForm
from accounts.models import AuditEvent, Membership, Role
from accounts.urls_helpers import account_url

AUDIT_PAGE_SIZE = 50


class LoginView(auth_views.LoginView):
    form_class = ThrottledLoginForm
    template_name = "registration/login.html"
    redirect_authenticated_user = True


class PasswordResetView(auth_views.PasswordResetView):
    """Django's reset, with links built from PORTAL_BASE_URL (never from the request's
    Host, which whoever asks controls) and a limit per address and per client."""

    success_url = reverse_lazy("accounts:password_reset_done")
    email_template_name = "registration/password_reset_email.txt"
    subject_template_name = "registration/password_reset_subject.txt"

    def form_valid(self, form):
        email_ok, client_ok = throttle.reset_request_allowed(
            form.cleaned_data["email"], client_ip(self.request)
        )
        if not client_ok:
            form.add_error(
                None,
                _("Too many password reset requests from your address. Try again in an hour."),
            )
            return self.form_invalid(form)
        if not email_ok:  # answered as usual: whether the address has a user is not told
            return HttpResponseRedirect(self.get_success_url())
        base = urlsplit(settings.PORTAL_BASE_URL)
        self.extra_email_context = {"protocol": base.scheme, "domain": base.netloc}
        return super().form_valid(form)


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    success_url = reverse_lazy("accounts:password_reset_complete")

    def form_valid(self, form):
        # The lockout message tells people to reset their password: a reset lifts it.
        throttle.reset(self.user.email)
        return super().form_valid(form)


class PasswordChangeView(auth_views.PasswordChangeView):
    success_url = reverse_lazy("accounts:password_change_done")


@login_required
@require_GET
def home(request):
    """Where a user lands: straight to their only place, or a choice of places."""
    enterprises = enterprises_for_user(request.user)
    accounts = accounts_for_user(request.user)
    if len(enterprises) == 1 and all(a.role == Role.ENTERPRISE_ADMIN for a in accounts):
        return redirect("accounts:enterprise_home", enterprise_id=enterprises[0].pk)
    if not enterprises and len(accounts) == 1:
        return HttpResponseRedirect(account_url(accounts[0].account))
    member_accounts = [a for a in accounts if a.role != Role.ENTERPRISE_ADMIN]
    return render(
        request,
        "accounts/home.html",
        {"enterprises": enterprises, "member_accounts": member_accounts},
    )


@enterprise_view
@require_GET
def enterprise_home(request, enterprise):
    accounts = (
        enterprise.accounts.filter(is_active=True)
        .annotate(member_count=Count("memberships"))
        .order_by("name")
    )
    admins = (
        Membership.objects.filter(enterprise=enterprise, role=Role.ENTERPRISE_ADMIN)
        .select_related("user")
        .order_by("user__email")
    )
    return render(
        request,
        "accounts/enterprise_home.html",
        {"enterprise": enterprise, "accounts": accounts, "admins": admins},
    )


def _next_in_account(request, access, requested: str) -> str:
    """Where to land after signing in: ``requested`` if it is a page of this account."""
    if requested.startswith(access.account.url_prefix) and url_has_allowed_host_and_scheme(
        requested, allowed_hosts={request.get_host()}
    ):
        return requested
    return account_url(access.account)


@login_required
@require_http_methods(["GET", "POST"])
def account_sign_in(request, account_id: int):
    """Enter an account's portal on the same session. An enterprise admin confirms with a
    POST (CSRF-protected), which is audited and remembered for the session; a GET only shows
    what they are about to enter. Members enter their own account directly."""
    access = get_account_for_user(request.user, account_id)
    source = request.POST if request.method == "POST" else request.GET
    target = _next_in_account(request, access, source.get("next", ""))
    if request.method == "POST":
        do_sign_in_to_account(request.user, access.account, access.role, request=request)
        mark_signed_in(request, access.account)
        return HttpResponseRedirect(target)
    if not needs_sign_in(request, access):
        return HttpResponseRedirect(target)
    return render(
        request,
        "accounts/account_sign_in.html",
        {"access": access, "next": target, "enterprise": access.enterprise},
    )


@enterprise_view
@require_http_methods(["GET", "POST"])
def audit_log(request, enterprise):
    """The enterprise's audit log. Its filter is POSTed (a colleague's address is personal
    data) and opens at ?search=<opaque id> (accounts.searches), pages included."""
    terms = None  # a POST with errors shows them, unsaved
    if request.method == "POST":
        form = AuditFilterForm(request.POST, enterprise=enterprise)
        if form.is_valid():
            typed = {key: request.POST.get(key, "") for key in form.fields}
            saved = searches.save(request, AUDIT_FILTER, typed, enterprise=enterprise)
            return searches.open_at(request.path, saved)
    else:
        terms = searches.from_query(request, AUDIT_FILTER, enterprise=enterprise)
        form = AuditFilterForm(terms, enterprise=enterprise)
    events = AuditEvent.objects.filter(enterprise=enterprise).select_related("account")
    if form.is_bound and form.is_valid():
        events = form.apply(events, zoneinfo.ZoneInfo(enterprise.time_zone))
    elif form.is_bound:
        events = events.none()
    page = Paginator(events, AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    query = searches.page_query(request, terms)
    return render(
        request,
        "accounts/audit_log.html",
        {"enterprise": enterprise, "form": form, "page": page, "query": query},
    )


AUDIT_FILTER = "audit_log"


@account_view()
@require_GET
def account_home(request):
    access = request.account_access
    members = (
        Membership.objects.filter(
            Q(account=access.account) | Q(enterprise=access.enterprise, role=Role.ENTERPRISE_ADMIN)
        )
        .select_related("user")
        .order_by("role", "user__email")
        if access.is_admin
        else Membership.objects.none()
    )
    return render(
        request,
        "accounts/account_home.html",
        {"access": access, "account": access.account, "members": members},
    )
