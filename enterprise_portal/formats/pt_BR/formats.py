"""Dates and times as the trace, the ledger and every export write them (ISO 8601, 24-hour),
so a page never shows "12/02/2026 11:42 p.m." beside "2026-12-02 23:42". Both languages."""

DATE_FORMAT = "Y-m-d"
DATETIME_FORMAT = "Y-m-d H:i"
SHORT_DATE_FORMAT = "Y-m-d"
SHORT_DATETIME_FORMAT = "Y-m-d H:i"
TIME_FORMAT = "H:i"
