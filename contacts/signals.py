"""What contacts tells the apps above it.

``contact_list_ready`` is sent when an import commits a list's contacts (inside that
transaction, in the account's schema), with ``list_ids``. The dialler (campaigns) creates
the dial states of sub-campaigns already using the list, so they arrive in the same commit
as "ready": contacts never imports the apps that build on it (docs/architecture.md).
"""

from django.dispatch import Signal

contact_list_ready = Signal()
