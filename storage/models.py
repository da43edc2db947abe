from django.conf import settings
from django.db import models

from accounts.models import Organization


class BytewiseKeyField(models.CharField):
    """A CharField that sorts and compares byte by byte, as S3 orders keys.

    SQLite's default collation (BINARY) already compares UTF-8 bytes; PostgreSQL
    would use the database's locale (where "B" sorts next to "b"), which breaks
    both S3's listing order and the range scans prefix listing relies on, so the
    column gets the "C" collation there. Choosing it per connection keeps one
    migration valid on both databases.
    """

    def db_parameters(self, connection):
        params = super().db_parameters(connection)
        if connection.vendor == "postgresql":
            params["collation"] = "C"
        elif connection.vendor == "mysql":
            params["collation"] = "utf8mb4_bin"
        return params


def key_folder(key):
    """The folder a key sits in: everything up to and including its last `/` ("" at the top)."""
    return key[: key.rfind("/") + 1]


def key_successor(prefix):
    """The smallest string greater than every string starting with `prefix` (None if there is none).

    UTF-8 byte order is code point order, so bumping the last character gives
    the exclusive upper bound of a prefix range scan.
    """
    while prefix:
        last = ord(prefix[-1])
        if last < 0x10FFFF:
            following = last + 1
            if 0xD800 <= following <= 0xDFFF:  # surrogates never appear in valid keys
                following = 0xE000
            return prefix[:-1] + chr(following)
        prefix = prefix[:-1]
    return None


class WriterKind(models.TextChoices):
    USER = "user", "User"
    FUNCTION = "function", "Function"
    # A command, an API token or anything else that is neither.
    OTHER = "other", "Other"


class StoredObjectQuerySet(models.QuerySet):
    def of(self, organization):
        return self.filter(organization=organization)

    def in_prefix(self, prefix):
        """Keys starting with `prefix`, as a range so the (organization, key) index serves it.

        A LIKE would be case-insensitive on SQLite and need escaping of % and _.
        """
        if not prefix:
            return self
        upper = key_successor(prefix)
        queryset = self.filter(key__gte=prefix)
        return queryset.filter(key__lt=upper) if upper else queryset

    def files_in(self, folder):
        """The files directly in a folder (not in its subfolders, and not folder markers)."""
        return self.filter(folder=folder).exclude(key__endswith="/")

    def under_subfolders(self, folder):
        """Everything in the subfolders of a folder, markers included."""
        return self.in_prefix(folder).exclude(folder=folder)

    def not_markers(self):
        return self.exclude(key__endswith="/")


class StoredObject(models.Model):
    """One object of an organization's storage: metadata here, bytes in Django's storage under `blob_name`.

    Listing reads only this table, so web servers and workers on different
    machines agree on what exists without walking a disk or a bucket.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="stored_objects")
    # At most 1,024 bytes of UTF-8 (S3's limit), checked by services.validate_key.
    key = BytewiseKeyField(max_length=1024)
    # Denormalised from the key so a folder's own files can be sorted by size
    # or date with an index instead of scanning its subfolders.
    folder = BytewiseKeyField(max_length=1024)
    size = models.PositiveBigIntegerField()
    etag = models.CharField(max_length=32, help_text="MD5 of the content, hex")
    content_type = models.CharField(max_length=255)
    last_modified = models.DateTimeField()
    written_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    written_by_function = models.ForeignKey(
        "functions.Function", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    writer_kind = models.CharField(max_length=8, choices=WriterKind.choices, default=WriterKind.USER)
    # Kept so "written by" still reads right after the user or Function is gone:
    # the e-mail, the Function's name, or what else wrote it.
    writer_label = models.CharField(max_length=254, blank=True)
    # The object's bytes in default_storage; a replacement gets a new blob, so
    # a reader holding the old name never sees a half-written file.
    blob_name = models.CharField(max_length=255)

    objects = StoredObjectQuerySet.as_manager()

    class Meta:
        ordering = ["key"]
        constraints = [
            # Also the index prefix listings scan, in key order.
            models.UniqueConstraint(fields=["organization", "key"], name="storedobject_org_key_unique"),
        ]
        indexes = [
            models.Index(fields=["organization", "folder", "size"], name="storedobject_folder_size_idx"),
            models.Index(fields=["organization", "folder", "last_modified"], name="storedobject_folder_time_idx"),
        ]

    def __str__(self):
        return self.key

    def save(self, *args, **kwargs):
        self.folder = key_folder(self.key)
        super().save(*args, **kwargs)

    @property
    def name(self):
        """The last segment, as the folder view shows it."""
        return self.key[len(self.folder):]

    @property
    def is_folder_marker(self):
        return self.key.endswith("/")

