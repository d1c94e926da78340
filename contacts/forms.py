from __future__ import annotations

from django import forms
from django.conf import settings
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from contacts.importer import upload_limit_bytes
from devices import uploads


class UploadForm(forms.Form):
    name = forms.CharField(label=_("List name"), max_length=120)
    file = forms.FileField(
        label=_("CSV file"),
        help_text=format_lazy(
            _(
                "Columns: client_id, phone (or phone1, phone2, … / phones), email, name, "
                "time_zone; other columns are kept. UTF-8, up to {mb} MB."
            ),
            mb=settings.MAX_UPLOAD_MB,
        ),
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.txt,text/csv"}),
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        uploads.check_size(upload.size, upload_limit_bytes())
        return upload
