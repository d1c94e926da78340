"""A voice sub-campaign's message: the WAV a call engine plays to the person on answer, so
a voice broadcast really delivers what it has to say.

It is uploaded by an account admin, checked before it is kept (a real WAV: 16-bit PCM,
mono, 8 or 16 kHz, 1 second to 2 minutes, at most 5 MB: what a telephone line carries and
every SIP stack plays), stored privately (devices.uploads), served only to the account's
members, and replaced or removed with an audit row.
"""

from __future__ import annotations

import io
import wave
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.utils.translation import gettext as _

from accounts.actions import audit
from campaigns.models import SubCampaign
from devices import uploads

MAX_BYTES = 5 * 1024 * 1024
RATES = (8000, 16000)
MIN_SECONDS, MAX_SECONDS = 1.0, 120.0


@dataclass(frozen=True)
class WavInfo:
    rate: int
    seconds: float


def format_hint() -> str:
    return _("Save it as WAV: 16-bit PCM, mono, 8,000 or 16,000 Hz, 1 second to 2 minutes.")


def check_wav(uploaded_file) -> WavInfo:
    """The WAV's rate and length, or ValidationError saying what is wrong and what to do."""
    uploads.check_size(uploaded_file.size, MAX_BYTES, format_hint())
    data = uploaded_file.read(MAX_BYTES + 1)
    uploaded_file.seek(0)
    try:
        with wave.open(io.BytesIO(data), "rb") as audio:
            channels, width, rate = audio.getnchannels(), audio.getsampwidth(), audio.getframerate()
            frames = audio.getnframes()
            if audio.getcomptype() != "NONE":
                raise wave.Error("compressed")
    except (wave.Error, EOFError, ValueError):
        raise ValidationError(
            _("This is not a WAV file we can play.") + " " + format_hint(), code="not_wav"
        ) from None
    problems = []
    if width != 2:
        problems.append(_("it is %(bits)s-bit") % {"bits": width * 8})
    if channels != 1:
        problems.append(_("it has %(n)s channels") % {"n": channels})
    if rate not in RATES:
        problems.append(_("it is sampled at %(rate)s Hz") % {"rate": f"{rate:,}"})
    seconds = frames / rate if rate else 0.0
    if not MIN_SECONDS <= seconds <= MAX_SECONDS:
        problems.append(_("it lasts %(seconds).1f seconds") % {"seconds": seconds})
    if problems:
        raise ValidationError(
            _("This WAV cannot be played on a call: %(problems)s.")
            % {"problems": "; ".join(problems)}
            + " "
            + format_hint(),
            code="wav_format",
        )
    return WavInfo(rate, round(seconds, 1))


def do_set_voice_message(
    sub: SubCampaign, uploaded_file, *, actor=None, request=None
) -> SubCampaign:
    """Checks and keeps the message (replacing any earlier one, whose file goes once this
    commits; the new file goes if it does not)."""
    info = check_wav(uploaded_file)
    path = uploads.store(uploaded_file, "voice-message")
    try:
        with transaction.atomic(durable=True):
            previous = sub.voice_message_file
            sub.voice_message_file = path
            sub.voice_message_name = uploads.file_name(uploaded_file)[:120]
            sub.voice_message_seconds = info.seconds
            sub.save(
                update_fields=["voice_message_file", "voice_message_name", "voice_message_seconds"]
            )
            audit(actor, "sub_campaign.voice_message", account=connection.tenant, obj=sub,
                  details={"file": sub.voice_message_name, "seconds": info.seconds,
                           "rate": info.rate}, request=request)  # fmt: skip
            if previous:
                transaction.on_commit(lambda: uploads.discard(previous))
    except BaseException:
        uploads.discard(path)
        raise
    return sub


@transaction.atomic(durable=True)
def do_remove_voice_message(sub: SubCampaign, *, actor=None, request=None) -> None:
    previous, name = sub.voice_message_file, sub.voice_message_name
    sub.voice_message_file = sub.voice_message_name = ""
    sub.voice_message_seconds = 0
    sub.save(update_fields=["voice_message_file", "voice_message_name", "voice_message_seconds"])
    audit(actor, "sub_campaign.voice_message_remove", account=connection.tenant, obj=sub,
          details={"file": name}, request=request)  # fmt: skip
    if previous:
        transaction.on_commit(lambda: uploads.discard(previous))


def open_message(sub: SubCampaign):
    """The stored WAV, for the page's player and for call engines."""
    return default_storage.open(sub.voice_message_file, "rb")
