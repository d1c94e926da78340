"""The same dates and times as in English (see enterprise_portal/formats/en/formats.py)."""

from enterprise_portal.formats.en.formats import (  # noqa: F401 - Django reads them here
    DATE_FORMAT,
    DATETIME_FORMAT,
    SHORT_DATE_FORMAT,
    SHORT_DATETIME_FORMAT,
    TIME_FORMAT,
)
