"""Answers the code builds field by field from an operation's response schema, sent as
JSON without ninja validating them against that schema again. For the long lists (a batch
of 1,000 decisions, a bulk of 10,000 results) that validation cost more than computing
them. The OpenAPI document still describes them (``response=``), and the schema-driven
fuzz (tests/test_api_fuzz.py) checks that every answer conforms."""

from __future__ import annotations

import json

from django.http import HttpResponse
from ninja.responses import NinjaJSONEncoder


def built(data: dict, status: int = 200) -> HttpResponse:
    return HttpResponse(
        json.dumps(data, cls=NinjaJSONEncoder, separators=(",", ":")),
        status=status,
        content_type="application/json; charset=utf-8",
    )
