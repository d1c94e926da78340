from django.urls import path

from devices import views

app_name = "devices"

urlpatterns = [
    path(
        "enterprises/<int:enterprise_id>/calling-rules/", views.calling_rules, name="calling_rules"
    ),
    path(
        "enterprises/<int:enterprise_id>/calling-rules/<str:kind>/<int:pk>/delete/",
        views.delete_calling_rule,
        name="delete_calling_rule",
    ),
]
