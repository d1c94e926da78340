from django.contrib import admin
from django.contrib.admin.widgets import AutocompleteSelect
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from accounts.actions import do_create_account
from accounts.admin_audit import AuditedAdmin
from accounts.models import Account, AuditEvent, Domain, Enterprise, Membership, User


class AccountInline(admin.TabularInline):
    model = Account
    fields = ("name", "slug", "schema_name", "is_active")
    readonly_fields = ("name", "slug", "schema_name")
    extra = 0
    can_delete = False
    show_change_link = True


@admin.register(Enterprise)
class EnterpriseAdmin(AuditedAdmin):
    list_display = ("name", "default_region", "time_zone", "language", "created_at")
    search_fields = ("name",)
    # devices.admin adds the calling rules' inlines (a layer above this app).
    inlines = [AccountInline]


class DomainInline(admin.TabularInline):
    model = Domain
    extra = 0
    readonly_fields = ("domain", "is_primary")
    can_delete = False


@admin.register(Account)
class AccountAdmin(AuditedAdmin):
    list_display = ("name", "enterprise", "slug", "schema_name", "is_active", "created_at")
    list_filter = ("enterprise", "is_active")
    search_fields = ("name", "slug")
    inlines = [DomainInline]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("enterprise", "name", "slug")
        return ("enterprise", "name", "slug", "schema_name", "is_active")

    def get_readonly_fields(self, request, obj=None):
        return ("enterprise", "slug", "schema_name") if obj else ()

    def get_queryset(self, request):
        return super().get_queryset(request).exclude(schema_name="public")

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)  # audited as admin.change
            return
        created = do_create_account(
            obj.enterprise, obj.name, slug=obj.slug or None, actor=request.user
        )
        obj.pk = created.pk
        self.message_user(
            request,
            _("Account schema %(schema)s created in %(seconds).2f s.")
            % {"schema": created.schema_name, "seconds": created.creation_seconds},
        )

    def has_delete_permission(self, request, obj=None):
        # Accounts hold the attempt history regulators ask about; deactivate instead.
        return False


class ChecksValuesAutocompleteSelect(AutocompleteSelect):
    """Django's autocomplete widget looks the submitted value up as it is to show a form
    again with its errors, so a value that is no id ("é") raised ValueError: a 500 for a
    tampered or mistyped POST. Values the target field cannot hold are left out: the
    form says "Select a valid choice" instead."""

    def optgroups(self, name, value, attr=None):
        remote = self.field.remote_field
        target = remote.model._meta.get_field(remote.field_name)
        usable = []
        for item in value:
            try:
                target.to_python(item)
            except ValidationError:
                continue
            usable.append(item)
        return super().optgroups(name, usable, attr)


class MembershipInline(admin.TabularInline):
    model = Membership
    fk_name = "user"
    extra = 0
    autocomplete_fields = ("enterprise", "account")

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name in self.autocomplete_fields:
            kwargs["widget"] = ChecksValuesAutocompleteSelect(
                db_field, self.admin_site, using=kwargs.get("using")
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(User)
class UserAdmin(AuditedAdmin, DjangoUserAdmin):
    ordering = ("email",)
    list_display = ("email", "full_name", "is_active", "is_staff", "last_login")
    search_fields = ("email", "full_name")
    list_filter = ("is_active", "is_staff", "is_superuser")
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        (_("Profile"), {"fields": ("full_name",)}),
        (_("Permissions"), {"fields": ("is_active", "is_staff", "is_superuser")}),
        (_("Dates"), {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)
    inlines = [MembershipInline]


@admin.register(AuditEvent)
class AuditEventAdmin(AuditedAdmin):
    list_display = ("occurred_at", "actor_label", "enterprise", "account", "action", "object_repr")
    list_filter = ("enterprise", "action")
    search_fields = ("actor_label", "action", "object_repr")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# Django's own Group admin, audited like ours.
class GroupAdmin(AuditedAdmin, DjangoGroupAdmin):
    pass


admin.site.unregister(Group)
admin.site.register(Group, GroupAdmin)
