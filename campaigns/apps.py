from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = _("Campaigns")

    def ready(self):
        """The compliance core (devices) acts on this app's dial queue and asks its
        blacklists through interfaces it defines, and contacts says when a list is ready:
        this app registers its answers here, so neither imports it (docs/architecture.md)."""
        from campaigns import dial_states  # models load after apps.py: imported at ready()
        from campaigns.blacklists import AccountBlacklists  # same reason
        from contacts.signals import contact_list_ready  # same reason
        from devices import interfaces  # same reason

        interfaces.register(
            dial_queue=dial_states.AccountDialQueue(), blacklists=AccountBlacklists()
        )
        contact_list_ready.connect(
            dial_states.on_list_ready, dispatch_uid="campaigns.dial_states.on_list_ready"
        )
