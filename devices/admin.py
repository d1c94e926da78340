"""Calling rules in the platform admin, on the enterprise's page."""

from django.contrib import admin

from accounts.admin import EnterpriseAdmin
from accounts.models import Enterprise
from devices.models import CallingWindow, Holiday


class CallingWindowInline(admin.TabularInline):
    model = CallingWindow
    extra = 0


class HolidayInline(admin.TabularInline):
    model = Holiday
    extra = 0


class EnterpriseWithRulesAdmin(EnterpriseAdmin):
    inlines = [*EnterpriseAdmin.inlines, CallingWindowInline, HolidayInline]


admin.site.unregister(Enterprise)
admin.site.register(Enterprise, EnterpriseWithRulesAdmin)
