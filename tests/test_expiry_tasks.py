"""The beat tasks that put contacts back in their queues when what held them expires."""

import datetime as dt

import time_machine
from django_tenants.utils import tenant_context

from campaigns.blacklists import do_add_entry, do_create_blacklist, do_set_blacklist_campaigns
from campaigns.models import DialState
from campaigns.tasks import release_expired_blacklist_entries
from devices.actions import do_save_device_setting
from devices.tasks import release_expired_blocks
from tests import factories

NUMBER = "+17135554377"


def test_an_expired_block_releases_its_contacts_on_the_next_beat(personas):
    with tenant_context(personas.acct_a1):
        sub = factories.sub_campaign(factories.contact_list([{"phones": [NUMBER]}]))
    expiry = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    do_save_device_setting(personas.ent_a, NUMBER, "block", reason="dispute", expires_at=expiry)
    with tenant_context(personas.acct_a1):
        assert DialState.objects.get(sub_campaign=sub).status == "suppressed"
    assert release_expired_blocks() == 0, "not expired yet"
    with time_machine.travel(expiry + dt.timedelta(minutes=5)):
        assert release_expired_blocks() == 1
    with tenant_context(personas.acct_a1):
        assert DialState.objects.get(sub_campaign=sub).status == "pending"


def test_an_expired_blacklist_entry_leaves_its_list_on_the_next_beat(personas):
    expiry = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    with tenant_context(personas.acct_a1):
        sub = factories.sub_campaign(factories.contact_list([{"phones": [NUMBER]}]))
        blacklist = do_create_blacklist(name="Cooling off")
        do_set_blacklist_campaigns(blacklist, [sub.campaign])
        do_add_entry(blacklist, "phone", NUMBER, expires_at=expiry)
    assert release_expired_blacklist_entries() == 0
    with time_machine.travel(expiry + dt.timedelta(minutes=5)):
        assert release_expired_blacklist_entries() == 1
    with tenant_context(personas.acct_a1):
        assert DialState.objects.get(sub_campaign=sub).status == "pending"
        assert not blacklist.entries.exists()
