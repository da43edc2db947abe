import zoneinfo

from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone


class UserManager(BaseUserManager):
    use_in_migrations = True

    def create_user(self, email, password=None, **extra):
        if not email:
            raise ValueError("An e-mail address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save(using=self._db)
        return user

    def create_superuser(self, email, password=None, **extra):
        extra.update(is_staff=True, is_superuser=True)
        return self.create_user(email, password, **extra)

    def get_by_natural_key(self, email):
        # Sign-in is case-insensitive on the e-mail.
        return self.get(email__iexact=email)


class User(AbstractBaseUser, PermissionsMixin):
    """A person. The e-mail is the sign-in name (the login form's `username`)."""

    email = models.EmailField(unique=True)
    name = models.CharField(max_length=150, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"

    def __str__(self):
        return self.email

    @property
    def display_name(self):
        return self.name or self.email

    def email_user(self, subject, message, **kwargs):
        send_mail(subject, message, None, [self.email], **kwargs)


class Region(models.TextChoices):
    US = "us", "United States"
    EU = "eu", "Europe"
    CA = "ca", "Canada"


# The AWS region a Function sees (AWS_REGION) for its organization's region.
AWS_REGION_FOR = {Region.US: "us-west-2", Region.EU: "eu-west-1", Region.CA: "ca-central-1"}


def validate_timezone(value):
    if value not in zoneinfo.available_timezones():
        raise ValidationError(
            f"“{value}” is not an IANA time zone name (for example Europe/Berlin or America/Chicago)."
        )


class Organization(models.Model):
    name = models.CharField(max_length=100)
    region = models.CharField(max_length=2, choices=Region.choices, default=Region.US)
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(Lower("name"), name="organization_name_unique_ci"),
        ]

    def __str__(self):
        return self.name

    @property
    def aws_region(self):
        return AWS_REGION_FOR[self.region]


class Access(models.TextChoices):
    """How much of an area (Functions, Functions storage) a role may touch."""

    NONE = "none", "None"
    READ = "read", "Read"
    WRITE = "write", "Read and write"


class BuiltinRole(models.TextChoices):
    FULL_ADMIN = "full_admin", "Full Admin"
    STANDARD_ADMIN = "standard_admin", "Standard Admin"
    READ_ONLY_ADMIN = "read_only_admin", "Read-only Admin"


# What each built-in role may do, per CONTRACT.md ("Access").
BUILTIN_ACCESS = {
    BuiltinRole.FULL_ADMIN: (Access.WRITE, Access.WRITE),
    BuiltinRole.STANDARD_ADMIN: (Access.WRITE, Access.WRITE),
    BuiltinRole.READ_ONLY_ADMIN: (Access.READ, Access.READ),
}


class CustomRole(models.Model):
    """A role a Full Admin composes ("APIs & Integrations" permissions)."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="custom_roles")
    name = models.CharField(max_length=64)
    description = models.CharField(max_length=300, blank=True)
    functions_access = models.CharField(max_length=5, choices=Access.choices, default=Access.NONE)
    storage_access = models.CharField(max_length=5, choices=Access.choices, default=Access.NONE)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint("organization", Lower("name"), name="customrole_name_unique_per_org_ci"),
        ]

    def __str__(self):
        return self.name


class MembershipQuerySet(models.QuerySet):
    def full_admins(self):
        return self.filter(builtin_role=BuiltinRole.FULL_ADMIN)

    def pending(self):
        """Invitations not accepted yet: the account has no password and was never signed in to."""
        return self.filter(user__last_login__isnull=True, user__password__startswith=UNUSABLE_PASSWORD_PREFIX)

    def accepted(self):
        return self.exclude(pk__in=self.pending().values("pk"))


class Membership(models.Model):
    """A user's place in one organization: exactly one role, built-in or custom."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    builtin_role = models.CharField(max_length=20, choices=BuiltinRole.choices, blank=True)
    custom_role = models.ForeignKey(CustomRole, on_delete=models.PROTECT, null=True, blank=True, related_name="memberships")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = MembershipQuerySet.as_manager()

    @property
    def is_pending(self):
        return self.user.last_login is None and not self.user.has_usable_password()

    class Meta:
        ordering = ["user__email"]
        constraints = [
            models.UniqueConstraint(fields=["user", "organization"], name="membership_user_org_unique"),
            models.CheckConstraint(
                condition=(
                    (models.Q(builtin_role="") & models.Q(custom_role__isnull=False))
                    | (~models.Q(builtin_role="") & models.Q(custom_role__isnull=True))
                ),
                name="membership_exactly_one_role",
            ),
        ]

    def __str__(self):
        return f"{self.user} in {self.organization} as {self.role_name}"

    @property
    def role_name(self):
        return self.custom_role.name if self.custom_role_id else BuiltinRole(self.builtin_role).label

    @property
    def role_key(self):
        """The value the role selects use: a built-in key or `custom:<id>`."""
        return f"custom:{self.custom_role_id}" if self.custom_role_id else self.builtin_role

    @property
    def is_full_admin(self):
        return self.builtin_role == BuiltinRole.FULL_ADMIN

    @property
    def functions_access(self):
        if self.custom_role_id:
            return Access(self.custom_role.functions_access)
        return BUILTIN_ACCESS[self.builtin_role][0]

    @property
    def storage_access(self):
        if self.custom_role_id:
            return Access(self.custom_role.storage_access)
        return BUILTIN_ACCESS[self.builtin_role][1]


class ApiScope(models.TextChoices):
    """What an API token may do (CONTRACT.md, "Public REST API"); write implies read."""

    FUNCTIONS_READ = "functions:read", "Read Functions"
    FUNCTIONS_WRITE = "functions:write", "Write Functions"
    STORAGE_READ = "storage:read", "Read Functions Storage"
    STORAGE_WRITE = "storage:write", "Write Functions Storage"


class ApiTokenQuerySet(models.QuerySet):
    def of(self, organization):
        return self.filter(organization=organization)

    def usable(self, now=None):
        now = now or timezone.now()
        return self.filter(revoked_at__isnull=True).filter(models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now))


class ApiToken(models.Model):
    """A bearer token of the public REST API, scoped to one organization.

    Only the sha256 of the token is stored; the token itself is shown once, when
    it is created. Tokens start with `sfn_` so secret scanners can spot leaks.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    # ApiScope values, e.g. ["functions:read", "storage:write"].
    scopes = models.JSONField(default=list)
    token_hash = models.CharField(max_length=64, unique=True)
    # The token's first characters, shown in the list so an admin can tell tokens apart.
    hint = models.CharField(max_length=16)
    created_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_by_label = models.CharField(max_length=254, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # None only when the admin chose "never expires" explicitly.
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # Names tell tokens apart in History; a revoked token's name may be reused.
            models.UniqueConstraint(
                "organization", Lower("name"), condition=models.Q(revoked_at__isnull=True),
                name="apitoken_active_name_unique_per_org_ci",
            ),
        ]

    def __str__(self):
        return self.name

    @property
    def actor_label(self):
        """How History and the Storage tab name this token as the one who acted."""
        return f"API token “{self.name}”"

    @property
    def scope_labels(self):
        return [ApiScope(scope).label for scope in self.scopes if scope in ApiScope.values]

    def is_expired(self, now=None):
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())

    @property
    def state(self):
        if self.revoked_at:
            return "revoked"
        if self.is_expired():
            return "expired"
        return "active"
