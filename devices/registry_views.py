"""National registries, for platform operators: sizes and ages, uploads, import progress,
and a number lookup. Public-schema pages; everyone but operators gets a 404 (the page is
not theirs to know about), platform staff who are not operators a 403."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods

from accounts import searches
from accounts.access import operator_view
from devices import uploads
from devices.access import get_import_for_operator
from devices.keys import DeviceKeyError, normalize_phone
from devices.models import Registry, RegistryImport
from devices.registry.freshness import age_days, is_stale
from devices.registry.imports import MAX_UPLOAD_MB, do_upload_registry_file, upload_hint
from devices.registry.lookup import do_lookup, registry_country
from devices.registry.parsing import reason_text

PAGE_SIZE = 20
COUNTRY_NAMES = {"BR": gettext_lazy("Brazil"), "US": gettext_lazy("United States")}
# In sentences: "telemarketing to Brazil is not screened", "not a Brazilian number".
TO_COUNTRY = {"BR": gettext_lazy("to Brazil"), "US": gettext_lazy("to the United States")}
NUMBER_OF = {"BR": gettext_lazy("Brazilian"), "US": gettext_lazy("US")}
KIND_CHOICES = [
    (RegistryImport.Kind.FULL, gettext_lazy("Full snapshot (replaces every number)")),
    (RegistryImport.Kind.ADD, gettext_lazy("Add the numbers in the file")),
    (RegistryImport.Kind.REMOVE, gettext_lazy("Remove the numbers in the file")),
]


class UploadForm(forms.Form):
    # Both forms share a page and field names: their own ids keep the labels apart.
    def __init__(self, *args, **kwargs):
        super().__init__(*args, auto_id="upload_%s", **kwargs)

    registry = forms.ModelChoiceField(
        label=gettext_lazy("Registry"), queryset=Registry.objects.all(), empty_label=None
    )
    kind = forms.ChoiceField(
        label=gettext_lazy("Kind of file"),
        choices=KIND_CHOICES,
        initial=RegistryImport.Kind.FULL,
        widget=forms.RadioSelect,
    )
    file = forms.FileField(
        label=gettext_lazy("File"),
        help_text=gettext_lazy(
            "Plain text with one number a line, or CSV (the first column, or the column named "
            "phone, number or telefone); a .zip of such files is read file by file. US: 10 "
            "digits (or 11 with a leading 1). Brazil: area code (DDD) and number, 10 or 11 "
            "digits, with or without 55."
        ),
    )


class LookupForm(forms.Form):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, auto_id="lookup_%s", **kwargs)

    registry = forms.ModelChoiceField(
        label=gettext_lazy("Registry"), queryset=Registry.objects.all(), empty_label=None
    )
    number = forms.CharField(label=gettext_lazy("Phone number"), max_length=40)

    def clean(self):
        data = super().clean()
        registry, number = data.get("registry"), data.get("number")
        if registry is None or not number:
            return data
        try:
            key = normalize_phone(number, registry.country)
        except DeviceKeyError as exc:
            raise ValidationError({"number": str(exc)}) from None
        if registry_country(key) != registry.country:
            raise ValidationError(
                {
                    "number": _("%(number)s is not a %(country)s number.")
                    % {"number": key, "country": NUMBER_OF.get(registry.country)}
                }
            )
        data["key"] = key
        return data


def _rows(now) -> list[dict]:
    rows = []
    for registry in Registry.objects.all():
        stale = is_stale(registry, now)
        rows.append(
            {
                "registry": registry,
                "country": COUNTRY_NAMES.get(registry.country, registry.country),
                "to_country": TO_COUNTRY.get(registry.country, registry.country),
                "age_days": age_days(registry, now),
                "stale": stale,
                "never": registry.last_imported_at is None,
            }
        )
    return rows


LOOKUP = "registry_lookup"


@operator_view
@require_http_methods(["GET", "POST"])
@uploads.accepts_upload(uploads.megabytes(MAX_UPLOAD_MB), hint=upload_hint)
def registry_index(request):
    now = timezone.now()
    upload = UploadForm()
    if request.method == "POST" and "number" in request.POST:
        # The lookup is POSTed, so the number stays out of URLs (accounts.searches).
        terms = {key: request.POST.get(key, "") for key in ("registry", "number")}
        saved = searches.save(request, LOOKUP, terms)
        return searches.open_at(reverse("registries:index"), saved)
    if request.method == "POST":
        upload = UploadForm(request.POST, request.FILES)
        if upload.is_valid():
            try:
                job = do_upload_registry_file(
                    upload.cleaned_data["registry"],
                    upload.cleaned_data["kind"],
                    upload.cleaned_data["file"],
                    actor=request.user,
                    request=request,
                )
            except ValidationError as exc:
                upload.add_error("file", exc)
            else:
                messages.success(request, _("Upload received; the import is running."))
                return HttpResponseRedirect(reverse("registries:import_detail", args=[job.pk]))
    lookup = LookupForm(searches.from_query(request, LOOKUP))
    answer = None
    if lookup.is_bound and lookup.is_valid():
        registry = lookup.cleaned_data["registry"]
        answer = {
            "registry": registry,
            "key": lookup.cleaned_data["key"],
            "listed": do_lookup(
                registry, lookup.cleaned_data["key"], actor=request.user, request=request
            ),
        }
    imports = Paginator(
        RegistryImport.objects.select_related("registry").order_by("-created_at", "-id"),
        PAGE_SIZE,
    ).get_page(request.GET.get("page"))
    return render(
        request,
        "registries/index.html",
        {
            "rows": _rows(now),
            "upload": upload,
            "lookup": lookup,
            "answer": answer,
            "imports": imports,
            "max_upload_mb": MAX_UPLOAD_MB,
            "nav": "registries",
        },
    )


@operator_view
@require_GET
def import_detail(request, import_id):
    job = get_import_for_operator(import_id)
    rejected = [
        {"file": name, "line": line, "text": text, "reason": reason_text(code)}
        for name, line, text, code in job.rejected
    ]
    return render(
        request,
        "registries/import_detail.html",
        {
            "job": job,
            "rejected": rejected,
            "more_rejected": max(0, job.lines_rejected - len(rejected)),
            "stale": is_stale(job.registry),
            "nav": "registries",
        },
    )


@operator_view
@require_GET
def import_progress(request, import_id):
    job = get_import_for_operator(import_id)
    return JsonResponse(
        {
            "status": job.status,
            "status_label": job.get_status_display(),
            "percent": job.progress_percent,
            "lines_read": job.lines_read,
            "numbers_accepted": job.numbers_accepted,
            "lines_rejected": job.lines_rejected,
            "size_after": job.size_after,
            "error": job.error,
        }
    )
