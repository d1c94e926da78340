"""Account pages, served under /a/<slug>/ in the account's schema."""

from django.urls import include, path

from accounts import views as account_views
from api import views as api_views
from campaigns import blacklist_views, carrier_views
from campaigns import contact_views as dialler_contact_views
from campaigns import views as campaign_views
from contacts import views as contact_views

account_patterns = (
    [
        path("", account_views.account_home, name="home"),
        path("campaigns/", campaign_views.campaign_list, name="campaigns"),
        path("campaigns/new/", campaign_views.campaign_create, name="campaign_create"),
        path(
            "campaigns/<int:campaign_id>/", campaign_views.campaign_detail, name="campaign_detail"
        ),
        path(
            "campaigns/<int:campaign_id>/sub-campaigns/new/",
            campaign_views.sub_campaign_create,
            name="sub_campaign_create",
        ),
        # Stable: the Contact Trace links here ("Manage Sub-Campaigns").
        path(
            "sub-campaigns/<int:sub_campaign_id>/",
            campaign_views.sub_campaign_manage,
            name="sub_campaign",
        ),
        path(
            "sub-campaigns/<int:sub_campaign_id>/counts.json",
            campaign_views.sub_campaign_counts,
            name="sub_campaign_counts",
        ),
        path(
            "sub-campaigns/<int:sub_campaign_id>/start/",
            campaign_views.sub_campaign_start,
            name="sub_campaign_start",
        ),
        path(
            "sub-campaigns/<int:sub_campaign_id>/voice-message/",
            campaign_views.sub_campaign_voice_message,
            name="sub_campaign_voice_message",
        ),
        path(
            "sub-campaigns/<int:sub_campaign_id>/voice-message.wav",
            campaign_views.sub_campaign_voice_message_file,
            name="sub_campaign_voice_message_file",
        ),
        path(
            "sub-campaigns/<int:sub_campaign_id>/voice-message/remove/",
            campaign_views.sub_campaign_voice_message_remove,
            name="sub_campaign_voice_message_remove",
        ),
        path(
            "sub-campaigns/<int:sub_campaign_id>/pause/",
            campaign_views.sub_campaign_pause,
            name="sub_campaign_pause",
        ),
        path("lists/", contact_views.list_index, name="lists"),
        path("lists/<int:list_id>/", contact_views.list_detail, name="list_detail"),
        path(
            "lists/<int:list_id>/progress.json", contact_views.list_progress, name="list_progress"
        ),
        path(
            "lists/<int:list_id>/rejects.csv", contact_views.list_rejects_csv, name="list_rejects"
        ),
        path("lists/<int:list_id>/delete/", contact_views.list_delete, name="list_delete"),
        path(
            "contacts/<int:contact_id>/",
            dialler_contact_views.contact_detail,
            name="contact_detail",
        ),
        path(
            "contacts/<int:contact_id>/disposition/",
            dialler_contact_views.contact_disposition,
            name="contact_disposition",
        ),
        # Kannel's delivery reports for this account's texts (signed per attempt).
        path("carrier/kannel/dlr/", carrier_views.kannel_dlr, name="kannel_dlr"),
        path("api-keys/", api_views.account_keys, name="api_keys"),
        path("api-keys/<str:key_id>/revoke/", api_views.account_key_revoke, name="api_key_revoke"),
        path("blacklists/", blacklist_views.blacklist_index, name="blacklists"),
        path("blacklists/<int:blacklist_id>/", blacklist_views.blacklist_detail, name="blacklist"),
        path(
            "blacklists/<int:blacklist_id>/delete/",
            blacklist_views.blacklist_delete,
            name="blacklist_delete",
        ),
        path(
            "blacklists/<int:blacklist_id>/entries/<int:entry_id>/remove/",
            blacklist_views.blacklist_entry_remove,
            name="blacklist_entry_remove",
        ),
        path(
            "blacklists/<int:blacklist_id>/export.csv",
            blacklist_views.blacklist_export,
            name="blacklist_export",
        ),
        path(
            "blacklists/<int:blacklist_id>/history/",
            blacklist_views.blacklist_history,
            name="blacklist_history",
        ),
        path(
            "blacklists/<int:blacklist_id>/imports/<int:import_id>/",
            blacklist_views.blacklist_import_detail,
            name="blacklist_import",
        ),
        path(
            "blacklists/<int:blacklist_id>/imports/<int:import_id>/progress.json",
            blacklist_views.blacklist_import_progress,
            name="blacklist_import_progress",
        ),
        path(
            "campaigns/<int:campaign_id>/blacklists/",
            blacklist_views.campaign_blacklists,
            name="campaign_blacklists",
        ),
        path("recordings/<int:attempt_id>.wav", campaign_views.account_recording, name="recording"),
        path(
            "recordings/<int:attempt_id>/delete/",
            campaign_views.account_recording_delete,
            name="recording_delete",
        ),
    ],
    "account",
)

# A database outage is a 503 with Retry-After, not a 500 (enterprise_portal.middleware).
handler500 = "enterprise_portal.middleware.server_error"

urlpatterns = [
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include(account_patterns)),
]
