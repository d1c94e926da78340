from django.contrib.auth import views as auth_views
from django.urls import path

from accounts import sending_domain_views, views

app_name = "accounts"

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "password/change/",
        views.PasswordChangeView.as_view(template_name="registration/password_change.html"),
        name="password_change",
    ),
    path(
        "password/change/done/",
        auth_views.PasswordChangeDoneView.as_view(
            template_name="registration/password_change_done.html"
        ),
        name="password_change_done",
    ),
    path(
        "password/reset/",
        views.PasswordResetView.as_view(template_name="registration/password_reset.html"),
        name="password_reset",
    ),
    path(
        "password/reset/sent/",
        auth_views.PasswordResetDoneView.as_view(
            template_name="registration/password_reset_done.html"
        ),
        name="password_reset_done",
    ),
    path(
        "password/reset/<uidb64>/<token>/",
        views.PasswordResetConfirmView.as_view(
            template_name="registration/password_reset_confirm.html"
        ),
        name="password_reset_confirm",
    ),
    path(
        "password/reset/complete/",
        auth_views.PasswordResetCompleteView.as_view(
            template_name="registration/password_reset_complete.html"
        ),
        name="password_reset_complete",
    ),
    path("enterprises/<int:enterprise_id>/", views.enterprise_home, name="enterprise_home"),
    path("enterprises/<int:enterprise_id>/audit/", views.audit_log, name="audit_log"),
    path(
        "enterprises/<int:enterprise_id>/sending-domains/",
        sending_domain_views.sending_domains,
        name="sending_domains",
    ),
    path(
        "enterprises/<int:enterprise_id>/sending-domains/<int:domain_id>/remove/",
        sending_domain_views.sending_domain_remove,
        name="sending_domain_remove",
    ),
    path("accounts/<int:account_id>/sign-in/", views.account_sign_in, name="account_sign_in"),
]
