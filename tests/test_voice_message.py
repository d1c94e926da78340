"""A voice sub-campaign's message to play on answer: uploaded by an admin, checked (format,
length, size), served only to the account's members, replaced and removed with audit rows."""

from __future__ import annotations

import io
import wave

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django_tenants.utils import tenant_context

from accounts.models import AuditEvent
from campaigns.models import SubCampaign
from tests import factories
from tests.helpers import client_for


def wav(seconds: float = 2.0, *, rate: int = 8000, channels: int = 1, width: int = 2) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as audio:
        audio.setnchannels(channels)
        audio.setsampwidth(width)
        audio.setframerate(rate)
        audio.writeframes(b"\x01\x00" * int(seconds * rate) * channels * (width // 2 or 1))
    return out.getvalue()


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


@pytest.fixture
def voice_sub(personas):
    with tenant_context(personas.acct_a1):
        return factories.sub_campaign(factories.contact_list([{"phones": ["+17135554101"]}]))


def _upload(client, sub, data: bytes, name: str = "hello.wav"):
    return client.post(
        f"/a/acme-one/sub-campaigns/{sub.pk}/voice-message/",
        {"file": SimpleUploadedFile(name, data, content_type="audio/wav")},
        follow=True,
    )


def _sub(personas, sub) -> SubCampaign:
    with tenant_context(personas.acct_a1):
        return SubCampaign.objects.get(pk=sub.pk)


def test_an_admin_uploads_a_message_and_members_can_listen(personas, voice_sub, media):
    admin = client_for(personas, "acct_admin")
    page = _upload(admin, voice_sub, wav(3.0, rate=16000)).content.decode()
    assert "Message saved: hello.wav (3.0 s)" in page
    assert 'data-testid="voice-message-player"' in page
    stored = _sub(personas, voice_sub)
    assert stored.voice_message_name == "hello.wav" and stored.voice_message_seconds == 3.0
    assert default_storage.exists(stored.voice_message_file)
    assert not stored.voice_message_file.startswith("/"), "private storage, no public path"
    # An agent of the account may listen; another enterprise's admin gets nothing.
    url = f"/a/acme-one/sub-campaigns/{voice_sub.pk}/voice-message.wav"
    heard = client_for(personas, "agent").get(url)
    assert heard.status_code == 200 and heard["Content-Type"] == "audio/wav"
    assert b"".join(heard.streaming_content).startswith(b"RIFF")
    assert client_for(personas, "other_ent_admin").get(url).status_code == 404
    assert client_for(personas, "anonymous").get(url).status_code == 302
    event = AuditEvent.objects.get(action="sub_campaign.voice_message")
    assert event.details["file"] == "hello.wav" and event.actor == personas.acct_admin


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (wav(2.0, channels=2), "it has 2 channels"),
        (wav(2.0, rate=44100), "it is sampled at 44,100 Hz"),
        (wav(2.0, width=1), "it is 8-bit"),
        (wav(130.0), "it lasts 130.0 seconds"),
        (wav(0.2), "it lasts 0.2 seconds"),
        (b"ID3\x03\x00 an mp3 pretending", "This is not a WAV file we can play."),
        (b"", "The submitted file is empty"),
    ],
    ids=["stereo", "44k", "8bit", "too-long", "too-short", "mp3", "empty"],
)
def test_a_file_that_cannot_be_played_is_refused_saying_why(personas, voice_sub, media, data,
                                                            expected):  # fmt: skip
    page = _upload(client_for(personas, "acct_admin"), voice_sub, data).content.decode()
    assert expected in page
    assert _sub(personas, voice_sub).voice_message_file == ""
    assert not any(media.rglob("voice-message-*")), "nothing kept of a refused file"


def test_an_oversized_file_is_refused_and_a_huge_one_before_it_is_read(personas, voice_sub,
                                                                         media):  # fmt: skip
    admin = client_for(personas, "acct_admin")
    page = _upload(admin, voice_sub, b"x" * int(5.5 * 1024 * 1024))
    assert "The file is 5.5 MB; the limit is 5 MB." in page.content.decode()
    page = _upload(admin, voice_sub, b"x" * (7 * 1024 * 1024))  # refused by its length alone
    assert "The upload is larger than 5 MB." in page.content.decode()
    assert _sub(personas, voice_sub).voice_message_file == ""


def test_replacing_then_removing_deletes_the_old_files(
    personas, voice_sub, media, django_capture_on_commit_callbacks
):
    admin = client_for(personas, "acct_admin")
    with django_capture_on_commit_callbacks(execute=True):
        _upload(admin, voice_sub, wav(2.0), "first.wav")
    first = _sub(personas, voice_sub).voice_message_file
    with django_capture_on_commit_callbacks(execute=True):
        _upload(admin, voice_sub, wav(4.0), "second.wav")
    second = _sub(personas, voice_sub)
    assert second.voice_message_name == "second.wav"
    assert not default_storage.exists(first) and default_storage.exists(second.voice_message_file)
    confirm = admin.get(f"/a/acme-one/sub-campaigns/{voice_sub.pk}/voice-message/remove/")
    assert "Remove second.wav?" in confirm.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        admin.post(f"/a/acme-one/sub-campaigns/{voice_sub.pk}/voice-message/remove/")
    assert _sub(personas, voice_sub).voice_message_file == ""
    assert not default_storage.exists(second.voice_message_file)
    assert AuditEvent.objects.filter(action="sub_campaign.voice_message_remove").count() == 1


def test_agents_cannot_change_it_and_sms_sub_campaigns_have_none(personas, voice_sub, media):
    response = client_for(personas, "agent").post(
        f"/a/acme-one/sub-campaigns/{voice_sub.pk}/voice-message/",
        {"file": SimpleUploadedFile("x.wav", wav(), content_type="audio/wav")},
    )
    assert response.status_code == 403
    with tenant_context(personas.acct_a1):
        sms = factories.sub_campaign(channel="sms", activate=False)
    page = _upload(client_for(personas, "acct_admin"), sms, wav()).content.decode()
    assert "Only voice sub-campaigns play a message." in page
