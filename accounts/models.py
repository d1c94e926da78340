"""Shared (public schema) models: enterprises, accounts as tenants, people, audit."""

from __future__ import annotations

import secrets
import zoneinfo

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_tenants.models import DomainMixin, TenantMixin

PHONE_REGIONS = [("US", _("United States")), ("BR", _("Brazil"))]


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(_("%(value)s is not a known time zone."), params={"value": value})


class Enterprise(models.Model):
    name = models.CharField(_("name"), max_length=120, unique=True)
    time_zone = models.CharField(
        _("time zone"), max_length=64, default="America/Chicago", validators=[validate_time_zone]
    )
    default_region = models.CharField(
        _("default phone region"),
        max_length=2,
        choices=PHONE_REGIONS,
        default="US",
        help_text=_("Decides phone numbers entered without a country code."),
    )
    language = models.CharField(
        _("language"), max_length=10, choices=settings.LANGUAGES, default="en"
    )
    attempt_cap = models.PositiveSmallIntegerField(
        _("attempt cap"),
        default=7,
        help_text=_("Most attempts to one device, across all accounts, within the cap period."),
    )
    attempt_cap_days = models.PositiveSmallIntegerField(_("cap period (days)"), default=7)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("enterprise")
        verbose_name_plural = _("enterprises")

    def __str__(self) -> str:
        return self.name


class Account(TenantMixin):
    """One account (business unit, client portfolio): one PostgreSQL schema.

    The single row without an enterprise is the public (platform) tenant that
    django-tenants needs for the shared pages.
    """

    enterprise = models.ForeignKey(
        Enterprise,
        verbose_name=_("enterprise"),
        on_delete=models.PROTECT,
        related_name="accounts",
        null=True,
        blank=True,
    )
    name = models.CharField(_("name"), max_length=120)
    slug = models.SlugField(_("slug"), max_length=40, unique=True)
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    auto_create_schema = True
    auto_drop_schema = False

    class Meta:
        ordering = ["name"]
        verbose_name = _("account")
        verbose_name_plural = _("accounts")
        constraints = [
            models.UniqueConstraint(
                fields=["enterprise", "name"], name="account_name_per_enterprise"
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_public(self) -> bool:
        return self.schema_name == "public"

    @property
    def url_prefix(self) -> str:
        return f"/{settings.TENANT_SUBFOLDER_PREFIX}/{self.slug}/"


class Domain(DomainMixin):
    """The sub-folder (``/a/<domain>/``) that routes to an account."""

    class Meta:
        verbose_name = _("routing")
        verbose_name_plural = _("routings")


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create(self, email: str, password: str | None, **extra) -> User:
        if not email:
            raise ValueError("Users need an email address.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra) -> User:
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra) -> User:
        extra["is_staff"] = True
        extra["is_superuser"] = True
        return self._create(email, password, **extra)

    def get_by_natural_key(self, username: str) -> User:
        return self.get(email__iexact=username)


class User(AbstractBaseUser, PermissionsMixin):
    """One user table for the whole platform; memberships say where a user may go."""

    email = models.EmailField(_("email address"), unique=True)
    full_name = models.CharField(_("full name"), max_length=120, blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    is_staff = models.BooleanField(
        _("platform operator"),
        default=False,
        help_text=_("May use the platform administration (Django admin)."),
    )
    date_joined = models.DateTimeField(_("joined"), default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        ordering = ["email"]
        verbose_name = _("user")
        verbose_name_plural = _("users")

    def __str__(self) -> str:
        return self.full_name or self.email

    def clean(self) -> None:
        super().clean()
        self.email = self.__class__.objects.normalize_email(self.email).lower()

    def get_full_name(self) -> str:
        return self.full_name or self.email

    def get_short_name(self) -> str:
        return (self.full_name.split() or [self.email])[0]


class Role(models.TextChoices):
    ENTERPRISE_ADMIN = "enterprise_admin", _("Enterprise admin")
    ACCOUNT_ADMIN = "account_admin", _("Account admin")
    AGENT = "agent", _("Agent")


class Membership(models.Model):
    """A role for a user: enterprise-wide (no account) or in one account."""

    user = models.ForeignKey(
        User, verbose_name=_("user"), on_delete=models.CASCADE, related_name="memberships"
    )
    enterprise = models.ForeignKey(
        Enterprise,
        verbose_name=_("enterprise"),
        on_delete=models.CASCADE,
        related_name="memberships",
    )
    account = models.ForeignKey(
        Account,
        verbose_name=_("account"),
        on_delete=models.CASCADE,
        related_name="memberships",
        null=True,
        blank=True,
    )
    role = models.CharField(_("role"), max_length=20, choices=Role.choices)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")
        constraints = [
            models.CheckConstraint(
                name="membership_role_matches_scope",
                condition=(
                    models.Q(role="enterprise_admin", account__isnull=True)
                    | models.Q(role__in=["account_admin", "agent"], account__isnull=False)
                ),
            ),
            models.UniqueConstraint(
                fields=["user", "enterprise"],
                condition=models.Q(account__isnull=True),
                name="one_enterprise_role_per_user",
            ),
            models.UniqueConstraint(
                fields=["user", "account"],
                condition=models.Q(account__isnull=False),
                name="one_account_role_per_user",
            ),
        ]

    def __str__(self) -> str:
        scope = self.account or self.enterprise
        return f"{self.user} – {self.get_role_display()} – {scope}"

    def clean(self) -> None:
        if self.role == Role.ENTERPRISE_ADMIN and self.account_id:
            raise ValidationError(
                {"account": _("An enterprise admin covers every account; leave it empty.")}
            )
        if self.role != Role.ENTERPRISE_ADMIN and not self.account_id:
            raise ValidationError(
                {"account": _("Account admins and agents belong to one account.")}
            )
        if self.account_id and self.account.enterprise_id != self.enterprise_id:
            raise ValidationError({"account": _("That account belongs to another enterprise.")})


class AuditEvent(models.Model):
    """Who did what, where. Written in the same transaction as the action it records."""

    occurred_at = models.DateTimeField(_("when"), default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        User,
        verbose_name=_("who"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    actor_label = models.CharField(_("who"), max_length=254, blank=True)
    enterprise = models.ForeignKey(
        Enterprise, verbose_name=_("enterprise"), on_delete=models.CASCADE, null=True, blank=True
    )
    account = models.ForeignKey(
        Account,
        verbose_name=_("account"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    action = models.CharField(_("action"), max_length=64)
    object_type = models.CharField(_("object type"), max_length=64, blank=True)
    object_id = models.CharField(_("object id"), max_length=64, blank=True)
    object_repr = models.CharField(_("object"), max_length=200, blank=True)
    details = models.JSONField(_("details"), default=dict, blank=True)
    ip_address = models.GenericIPAddressField(_("IP address"), null=True, blank=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        indexes = [
            models.Index(fields=["enterprise", "-occurred_at"], name="audit_enterprise_recent")
        ]

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M} {self.actor_label} {self.action}"


class ApiKey(models.Model):
    """A key for the integration API (``/api/v1/``): an enterprise's (every account) or one
    account's, with scopes and an optional expiry. Only a hash of the secret is kept; the
    key is shown once, when it is created (``accounts.api_keys``)."""

    class Scope(models.TextChoices):
        TRACE_READ = "trace:read", _("Read the Contact Trace")
        DEVICES_WRITE = "devices:write", _("Read and change device settings")
        BLACKLISTS_WRITE = "blacklists:write", _("Read and change campaign blacklists")
        DECISIONS_READ = "decisions:read", _("Ask what the dialer would decide")
        REGISTRIES_READ = "registries:read", _("Read national registries (operators)")

    name = models.CharField(_("name"), max_length=80)
    enterprise = models.ForeignKey(
        Enterprise, verbose_name=_("enterprise"), on_delete=models.CASCADE, null=True,
        blank=True, related_name="api_keys",
    )  # fmt: skip
    account = models.ForeignKey(
        Account, verbose_name=_("account"), on_delete=models.CASCADE, null=True, blank=True,
        related_name="api_keys",
    )  # fmt: skip
    prefix = models.CharField(_("key starts with"), max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64)
    scopes = models.JSONField(_("scopes"), default=list)
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)
    created_by = models.ForeignKey(
        User, verbose_name=_("created by"), on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)
    revoked_by_label = models.CharField(max_length=254, blank=True)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")
        constraints = [
            # An account key is its enterprise's too; an operator key has neither.
            models.CheckConstraint(
                name="api_key_account_in_enterprise",
                condition=models.Q(account__isnull=True) | models.Q(enterprise__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def email(self) -> str:
        """How the key signs what it does (audit rows, "saved by"): its name and creator."""
        return f"API key “{self.name}” ({self.created_by.email})"[:254]

    @property
    def is_operator(self) -> bool:
        return self.enterprise_id is None

    def usable_at(self, instant) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > instant)

    def status(self, instant) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= instant:
            return "expired"
        return "active"


class WebhookSubscription(models.Model):
    """An enterprise's URL that receives events (accounts.webhooks), signed with its secret."""

    class Event(models.TextChoices):
        DEVICE_BLOCKED = "device.blocked", _("A device was blocked")
        DEVICE_ALLOWED = "device.allowed", _("A device was allowed")
        OPT_OUT_RECEIVED = "opt_out.received", _("An opt-out was received (SMS, email)")
        BLACKLIST_ENTRY_ADDED = "blacklist.entry_added", _("A number was added to a blacklist")
        RECORDING_DELETED = "recording.deleted", _("A recording was deleted")
        REGISTRY_STALE = "registry.stale", _("A national registry is out of date")

    enterprise = models.ForeignKey(
        Enterprise, verbose_name=_("enterprise"), on_delete=models.CASCADE,
        related_name="webhooks",
    )  # fmt: skip
    url = models.URLField(_("URL"), max_length=500)
    events = models.JSONField(_("events"), default=list)
    secret = models.CharField(max_length=64)  # signs deliveries; shown once
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    created_by_label = models.CharField(_("created by"), max_length=254, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("webhook subscription")
        verbose_name_plural = _("webhook subscriptions")

    def __str__(self) -> str:
        return self.url


class WebhookDelivery(models.Model):
    """One event for one subscription: written with the change it reports, sent after
    commit, retried with backoff for 24 hours."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting")
        DELIVERED = "delivered", _("Delivered")
        FAILED = "failed", _("Failed")

    subscription = models.ForeignKey(
        WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries"
    )
    event = models.CharField(_("event"), max_length=32)
    payload = models.JSONField()
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.PENDING
    )
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt"), default=timezone.now)
    lease_until = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(_("last response"), null=True, blank=True)
    last_error = models.CharField(_("last error"), max_length=255, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    delivered_at = models.DateTimeField(_("delivered"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="webhook_due"),
            models.Index(fields=["subscription", "-created_at"], name="webhook_log"),
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.subscription_id} ({self.status})"


class SendingDomain(models.Model):
    """A domain the enterprise's email sub-campaigns may send from (the From address's
    domain, matched exactly). Written only by ``accounts.sending_domains``."""

    enterprise = models.ForeignKey(
        Enterprise, verbose_name=_("enterprise"), on_delete=models.CASCADE,
        related_name="sending_domains",
    )  # fmt: skip
    # IDNA (UTS #46) ASCII form, lower case: what the From address is compared with.
    domain = models.CharField(_("domain"), max_length=253)
    # The same name as people write it (Unicode), for pages.
    display_name = models.CharField(_("domain"), max_length=253)
    created_at = models.DateTimeField(_("added"), auto_now_add=True)
    created_by_label = models.CharField(_("added by"), max_length=254, blank=True)

    class Meta:
        ordering = ["domain"]
        verbose_name = _("sending domain")
        verbose_name_plural = _("sending domains")
        constraints = [
            models.UniqueConstraint(
                fields=["enterprise", "domain"], name="one_sending_domain_per_enterprise"
            )
        ]

    def __str__(self) -> str:
        return self.display_name or self.domain


def _search_id() -> str:
    return secrets.token_urlsafe(16)


class SavedSearch(models.Model):
    """A search whose terms (phone numbers, emails) must not travel in URLs: POSTed, kept
    here, and opened at an opaque id that expires (accounts.searches)."""

    id = models.CharField(primary_key=True, max_length=32, default=_search_id, editable=False)
    kind = models.CharField(_("kind"), max_length=40)
    enterprise = models.ForeignKey(
        Enterprise, verbose_name=_("enterprise"), on_delete=models.CASCADE, null=True, blank=True
    )
    account = models.ForeignKey(
        Account, verbose_name=_("account"), on_delete=models.CASCADE, null=True, blank=True
    )
    params = models.JSONField(_("search"), default=dict)
    created_by = models.ForeignKey(
        User, verbose_name=_("by"), on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    expires_at = models.DateTimeField(_("expires"), db_index=True)

    class Meta:
        verbose_name = _("saved search")
        verbose_name_plural = _("saved searches")

    def __str__(self) -> str:
        return f"{self.kind} {self.id}"
