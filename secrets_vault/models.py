from django.conf import settings
from django.db import models

from functions.models import Function


class SecretQuerySet(models.QuerySet):
    def of(self, function):
        return self.filter(function=function)

    def with_values(self):
        return self.filter(ciphertext__isnull=False)

    def missing_values(self):
        return self.filter(ciphertext__isnull=True)

    def not_on_key(self, key_id):
        """Rows whose value was encrypted with another key than `key_id` (what a rotation still has to do)."""
        return self.with_values().exclude(key_id=key_id)


class Secret(models.Model):
    """One named secret of a Function. The value is only ever stored encrypted (see crypto.py).

    Names are case-sensitive, like the keys of the JSON object a Function
    reads from SSM: `API_KEY` and `api_key` are two secrets.
    """

    function = models.ForeignKey(Function, on_delete=models.CASCADE, related_name="secrets")
    name = models.CharField(max_length=128)
    # A Fernet token (url-safe base64 text); NULL while the value is missing
    # (created by an import, waiting for an admin to fill it in).
    ciphertext = models.TextField(null=True, blank=True, editable=False)
    # Fingerprint of the key that encrypted `ciphertext` (crypto.key_fingerprint);
    # lets rotation count and find rows still on an old key without decrypting.
    key_id = models.CharField(max_length=8, blank=True, editable=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    # Who changed it when it was not a signed-in person (e.g. "manage.py set_secret").
    updated_by_label = models.CharField(max_length=254, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = SecretQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["function", "name"], name="secret_function_name_unique"),
        ]
        indexes = [models.Index(fields=["key_id", "id"], name="secret_key_id_idx")]

    def __str__(self):
        return self.name

    def __repr__(self):
        # Never the ciphertext either: it has no business in logs.
        return f"<Secret {self.pk} {self.name!r} of function {self.function_id}>"

    @property
    def value_missing(self):
        return self.ciphertext is None

    @property
    def binding(self):
        """What the ciphertext is bound to (crypto.py): this row of this Function."""
        return f"{self.function_id}:{self.pk}"

    @property
    def changed_by_display(self):
        if self.updated_by_id and self.updated_by:
            return self.updated_by.email
        return self.updated_by_label or "—"
