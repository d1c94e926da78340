"""In Portuguese (Brazil): an account admin creates a Blacklist de campanhas, attaches it
to a running campaign, adds a number, and sees that contact leave the pending contacts."""

import re
import uuid

import pytest
from django_tenants.utils import tenant_context
from playwright.sync_api import expect

from accounts.actions import do_add_membership, do_create_account, do_create_enterprise
from accounts.models import Role, User
from campaigns.models import DialState
from devices.models import ActiveSubCampaign
from tests import factories
from tests.browser.conftest import sign_in
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser]


@pytest.fixture
def brazilian_account(committed):
    suffix = uuid.uuid4().hex[:6]
    enterprise = do_create_enterprise(
        f"Cobranças {suffix}", time_zone="America/Sao_Paulo", default_region="BR",
        language="pt-br",
    )  # fmt: skip
    account = do_create_account(enterprise, f"Recife {suffix}")
    admin = User.objects.create_user(f"admin@{account.slug}.test", PASSWORD, full_name="Rita")
    do_add_membership(admin, enterprise, Role.ACCOUNT_ADMIN, account=account)
    with tenant_context(account):
        people = [
            {"client_id": "BR-1", "name": "Ana", "phones": ["+5511912345678"]},
            {"client_id": "BR-2", "name": "Bruno", "phones": ["+5511912345679"]},
        ]
        sub = factories.sub_campaign(
            factories.contact_list(people, name="Carteira novembro"),
            campaign_name="Cobrança novembro", name="Voz 1", caller_id="+551130000000",
        )  # fmt: skip
    yield account, admin, sub
    ActiveSubCampaign.objects.filter(account=account).delete()


def test_account_admin_blacklists_a_number_of_a_running_campaign(
    page, screenshot, brazilian_account
):
    account, admin, sub = brazilian_account
    sign_in(page, admin.email, PASSWORD)
    expect(page).to_have_url(re.compile(rf"/a/{account.slug}/$"))

    page.get_by_test_id("menu-dialer").click()
    expect(page.get_by_test_id("menu-dialer")).to_have_text("Discador")
    page.get_by_role("link", name="Blacklist de campanhas").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Blacklist de campanhas")
    expect(page.get_by_test_id("blacklists-empty")).to_be_visible()

    create = page.get_by_test_id("blacklist-create")
    create.get_by_label("Nome").fill("Não ligar")
    create.get_by_label("Descrição").fill("Pediram para não receber ligações")
    create.get_by_role("button", name="Criar blacklist").click()
    expect(page.get_by_test_id("blacklist-name")).to_have_text("Não ligar")

    campaigns = page.get_by_test_id("blacklist-campaigns")
    campaigns.get_by_label("Cobrança novembro").check()
    campaigns.get_by_role("button", name="Salvar campanhas").click()
    expect(page.get_by_test_id("used-by")).to_contain_text("Cobrança novembro")

    add = page.get_by_test_id("entry-add")
    add.get_by_label("Número de telefone ou ramal").fill("(11) 91234-5678")
    add.get_by_label("Motivo").fill("Revogou o consentimento")
    add.get_by_role("button", name="Adicionar à blacklist").click()
    expect(page.locator(".alert-success")).to_contain_text("+55 11 91234-5678")
    expect(page.locator(".alert-success")).to_contain_text("1 contato pendente removido")
    expect(page.get_by_test_id("entry-row")).to_have_count(1)
    expect(page.get_by_test_id("entry-count")).to_have_text("1")
    screenshot("blacklist-pt-br-number-added")

    # The campaign page: one contact left pending, the other suppressed.
    page.get_by_test_id("used-by").get_by_role("link", name="Cobrança novembro").click()
    row = page.get_by_test_id("sub-campaigns-table").locator("tbody tr").first
    expect(row.locator("td").nth(4)).to_have_text("1")  # pendentes
    expect(row.locator("td").nth(6)).to_have_text("1")  # suprimidos
    expect(page.get_by_test_id("campaign-blacklists")).to_contain_text("Não ligar")
    screenshot("blacklist-pt-br-campaign")

    with tenant_context(account):
        states = dict(
            DialState.objects.filter(sub_campaign=sub).values_list("device_key", "status")
        )
    assert states == {"+5511912345678": "suppressed", "+5511912345679": "pending"}
