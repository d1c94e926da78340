"""Account pages, served under /a/<slug>/ in the account's schema."""

from django.urls import include, path

from accounts import views as account_views

account_patterns = ([path("", account_views.account_home, name="home")], "account")

urlpatterns = [
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include(account_patterns)),
]
