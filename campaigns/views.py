from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Count, Prefetch, Q
from django.http import Http404, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.access import ADMIN_ROLES, ALL_ROLES, account_view
from accounts.urls_helpers import account_url
from campaigns import voice_messages
from campaigns.access import get_campaign_for, get_sub_campaign_for
from campaigns.actions import (
    do_activate_sub_campaign,
    do_create_campaign,
    do_pause_sub_campaign,
    do_save_sub_campaign,
)
from campaigns.blacklist_forms import AutoRuleForm
from campaigns.forms import CampaignForm, SubCampaignForm, VoiceMessageForm
from campaigns.models import Blacklist, Campaign, DialState, SubCampaign
from devices import uploads
from devices.access import get_recording_for_user
from devices.models import Attempt, Channel
from devices.recordings import do_delete_recording, recording_response, wav_response

ATTEMPTS_PAGE_SIZE = 25
CAMPAIGNS_PAGE_SIZE = 25
SUB_CAMPAIGNS_PAGE_SIZE = 25
# Sub-campaigns shown under each campaign of the list; the campaign's page has them all.
SUBS_PER_CAMPAIGN = 10


def state_counts(sub_campaign_ids) -> dict[int, dict[str, int]]:
    """Pending / dialing / done / suppressed per sub-campaign, in one query."""
    rows = (
        DialState.objects.filter(sub_campaign_id__in=list(sub_campaign_ids))
        .values("sub_campaign_id")
        .annotate(
            pending=Count("id", filter=Q(status=DialState.Status.PENDING)),
            dialing=Count("id", filter=Q(status=DialState.Status.DIALING)),
            done=Count("id", filter=Q(status=DialState.Status.DONE)),
            suppressed=Count("id", filter=Q(status=DialState.Status.SUPPRESSED)),
        )
    )
    empty = {"pending": 0, "dialing": 0, "done": 0, "suppressed": 0}
    counts = {pk: dict(empty) for pk in sub_campaign_ids}
    for row in rows:
        counts[row.pop("sub_campaign_id")] = row
    return counts


def _here(viewname: str, *args) -> str:
    return account_url(connection.tenant, viewname, *args)


@account_view(roles=ALL_ROLES)
@require_GET
def campaign_list(request):
    # The page's campaigns with their first sub-campaigns: one query (a sliced prefetch).
    first_subs = SubCampaign.objects.order_by("name", "pk")[:SUBS_PER_CAMPAIGN]
    campaigns = (
        Campaign.objects.annotate(sub_count=Count("sub_campaigns"))
        .prefetch_related(Prefetch("sub_campaigns", queryset=first_subs, to_attr="first_subs"))
        .order_by("name", "pk")
    )
    page = Paginator(campaigns, CAMPAIGNS_PAGE_SIZE).get_page(request.GET.get("page"))
    page.object_list = list(page.object_list)
    counts = state_counts([s.pk for c in page.object_list for s in c.first_subs])
    for campaign in page.object_list:
        for sub in campaign.first_subs:
            sub.counts = counts[sub.pk]
        campaign.more_subs = max(0, campaign.sub_count - SUBS_PER_CAMPAIGN)
    return render(
        request,
        "campaigns/campaign_list.html",
        {"page": page, "can_manage": request.account_access.is_admin, "nav": "campaigns"},
    )


@account_view(roles=ADMIN_ROLES)
@require_http_methods(["GET", "POST"])
def campaign_create(request):
    form = CampaignForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        campaign = do_create_campaign(
            name=form.cleaned_data["name"],
            description=form.cleaned_data["description"],
            actor=request.user,
            request=request,
        )
        messages.success(request, _("Campaign “%(name)s” created.") % {"name": campaign.name})
        return HttpResponseRedirect(_here("account:campaign_detail", campaign.pk))
    return render(request, "campaigns/campaign_form.html", {"form": form, "nav": "campaigns"})


@account_view(roles=ALL_ROLES)
@require_GET
def campaign_detail(request, campaign_id):
    campaign = get_campaign_for(request.account_access, campaign_id)
    page = Paginator(campaign.sub_campaigns.order_by("name", "pk"), SUB_CAMPAIGNS_PAGE_SIZE)
    page = page.get_page(request.GET.get("page"))
    counts = state_counts([s.pk for s in page.object_list])
    for sub in page.object_list:
        sub.counts = counts[sub.pk]
    used = set(campaign.blacklists.values_list("pk", flat=True))
    blacklists = list(Blacklist.objects.order_by("name"))
    for blacklist in blacklists:
        blacklist.used = blacklist.pk in used
    return render(
        request,
        "campaigns/campaign_detail.html",
        {
            "campaign": campaign,
            "page": page,
            "can_manage": request.account_access.is_admin,
            "blacklists": blacklists,
            "auto_form": AutoRuleForm(instance=campaign),
            "nav": "campaigns",
        },
    )


@account_view(roles=ADMIN_ROLES)
@require_http_methods(["GET", "POST"])
def sub_campaign_create(request, campaign_id):
    campaign = get_campaign_for(request.account_access, campaign_id)
    form = SubCampaignForm(request.POST or None, instance=SubCampaign(campaign=campaign))
    if request.method == "POST" and form.is_valid():
        sub = do_save_sub_campaign(
            form.save(commit=False),
            lists=form.cleaned_data["contact_lists"],
            actor=request.user,
            request=request,
        )
        messages.success(request, _("Sub-campaign “%(name)s” created.") % {"name": sub.name})
        return HttpResponseRedirect(_here("account:sub_campaign", sub.pk))
    return render(
        request,
        "campaigns/sub_campaign_form.html",
        {"form": form, "campaign": campaign, "nav": "campaigns"},
    )


@account_view(roles=ALL_ROLES)
@require_http_methods(["GET", "POST"])
def sub_campaign_manage(request, sub_campaign_id):
    """Manage Sub-Campaigns: the settings page, with live counts and recent attempts."""
    access = request.account_access
    sub = get_sub_campaign_for(access, sub_campaign_id)
    form = SubCampaignForm(request.POST or None, instance=sub)
    if request.method == "POST":
        access.require(ADMIN_ROLES)
        if form.is_valid():
            do_save_sub_campaign(
                form.save(commit=False),
                lists=form.cleaned_data["contact_lists"],
                actor=request.user,
                request=request,
            )
            messages.success(request, _("Settings saved."))
            return HttpResponseRedirect(_here("account:sub_campaign", sub.pk) + "#settings")
    if not access.is_admin:
        for field in form.fields.values():
            field.disabled = True
    attempts = Attempt.objects.filter(
        account_id=connection.tenant.pk, sub_campaign_id=sub.pk
    ).order_by("-attempted_at", "-id")
    page = Paginator(attempts, ATTEMPTS_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "campaigns/sub_campaign_manage.html",
        {
            "sub": sub,
            "form": form,
            "counts": state_counts([sub.pk])[sub.pk],
            "page": page,
            "can_manage": access.is_admin,
            "sending_problem": sub.sending_problem() if sub.channel == Channel.EMAIL else "",
            "nav": "campaigns",
        },
    )


@account_view(roles=ALL_ROLES)
@require_GET
def sub_campaign_counts(request, sub_campaign_id):
    sub = get_sub_campaign_for(request.account_access, sub_campaign_id)
    latest = (
        Attempt.objects.filter(account_id=connection.tenant.pk, sub_campaign_id=sub.pk)
        .order_by("-attempted_at", "-id")
        .values_list("id", flat=True)
        .first()
    )
    return JsonResponse(
        {
            "status": sub.status,
            "status_label": sub.get_status_display(),
            "counts": state_counts([sub.pk])[sub.pk],
            "latest_attempt": latest,
        }
    )


@account_view(roles=ADMIN_ROLES)
@require_POST
def sub_campaign_start(request, sub_campaign_id):
    sub = get_sub_campaign_for(request.account_access, sub_campaign_id)
    try:
        do_activate_sub_campaign(sub, actor=request.user, request=request)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, _("Sub-campaign started: attempts begin within seconds."))
    return HttpResponseRedirect(_here("account:sub_campaign", sub.pk))


@account_view(roles=ADMIN_ROLES)
@require_POST
def sub_campaign_pause(request, sub_campaign_id):
    sub = get_sub_campaign_for(request.account_access, sub_campaign_id)
    do_pause_sub_campaign(sub, actor=request.user, request=request)
    messages.success(request, _("Sub-campaign paused. Attempts already under way finish."))
    return HttpResponseRedirect(_here("account:sub_campaign", sub.pk))


@account_view(roles=ALL_ROLES)
@require_GET
def account_recording(request, attempt_id):
    """A recording of this account's attempt, for any of its members (agents included)."""
    attempt = get_recording_for_user(attempt_id, account=request.account_access.account)
    return recording_response(request, attempt)


@account_view(roles=ALL_ROLES)
@require_POST
def account_recording_delete(request, attempt_id):
    attempt = get_recording_for_user(attempt_id, account=request.account_access.account)
    do_delete_recording(attempt, actor=request.user, request=request)
    messages.success(request, _("Recording deleted."))
    back = request.POST.get("next", "")
    if not (back.startswith(connection.tenant.url_prefix) and "//" not in back):
        back = _here("account:home")
    return HttpResponseRedirect(back)


# --- Voice message (the WAV played on answer) ----------------------------------------------


@account_view(roles=ADMIN_ROLES)
@require_POST
@uploads.accepts_upload(
    voice_messages.MAX_BYTES,
    back=lambda request, sub_campaign_id: (
        _here("account:sub_campaign", sub_campaign_id) + "#settings"
    ),
)
def sub_campaign_voice_message(request, sub_campaign_id):
    """Upload (or replace) the message a voice sub-campaign plays when the person answers."""
    sub = get_sub_campaign_for(request.account_access, sub_campaign_id)
    back = _here("account:sub_campaign", sub.pk) + "#settings"
    form = VoiceMessageForm(request.POST, request.FILES)
    if sub.channel != Channel.VOICE:
        messages.error(request, _("Only voice sub-campaigns play a message."))
    elif not form.is_valid():
        messages.error(request, " ".join(form.errors.get("file", [])))
    else:
        try:
            voice_messages.do_set_voice_message(
                sub, form.cleaned_data["file"], actor=request.user, request=request
            )
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(
                request,
                _("Message saved: %(name)s (%(seconds)s s) plays when the person answers.")
                % {"name": sub.voice_message_name, "seconds": sub.voice_message_seconds},
            )
    return HttpResponseRedirect(back)


@account_view(roles=ALL_ROLES)
@require_GET
def sub_campaign_voice_message_file(request, sub_campaign_id):
    sub = get_sub_campaign_for(request.account_access, sub_campaign_id)
    if not sub.voice_message_file:
        raise Http404
    return wav_response(request, sub.voice_message_file, f"message-{sub.pk}.wav")


@account_view(roles=ADMIN_ROLES)
@require_http_methods(["GET", "POST"])
def sub_campaign_voice_message_remove(request, sub_campaign_id):
    """Confirm, then remove the message: calls then play nothing on answer."""
    sub = get_sub_campaign_for(request.account_access, sub_campaign_id)
    if not sub.voice_message_file:
        messages.info(request, _("This sub-campaign has no message to remove."))
        return HttpResponseRedirect(_here("account:sub_campaign", sub.pk) + "#settings")
    if request.method == "POST":
        voice_messages.do_remove_voice_message(sub, actor=request.user, request=request)
        messages.success(request, _("Message removed: calls play nothing when answered."))
        return HttpResponseRedirect(_here("account:sub_campaign", sub.pk) + "#settings")
    return render(
        request,
        "campaigns/voice_message_remove.html",
        {"sub": sub, "nav": "campaigns"},
    )
