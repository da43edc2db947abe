"""Secret values at rest: Fernet (AES-128-CBC with HMAC-SHA256) under a keyring.

Keys come from ``settings.SECRETS_ENCRYPTION_KEYS`` (the environment variable
of the same name, comma-separated). The first key encrypts, every key
decrypts: a new key goes in front, ``manage.py rotate_secrets_key``
re-encrypts every value with it, then the old key can be removed.

Without keys the embedded default (never production) keeps its keys in
``DATA_DIR/secrets.key``, created on first use (mode 0600, exclusively, so
two processes starting together agree on one key). The file holds the same
format as the variable (commas or one key per line, first encrypts), which
is how an embedded installation rotates its key.

Each value is bound to the row it belongs to: the encrypted text is
``sv1:<function id>:<secret id>`` + newline + value, checked on decrypt.
A ciphertext copied into another secret's row (of the same or of another
Function) is refused instead of handing one Function's secret to another
Function's code. The binding uses ids, not the name, so a rename needs no
key and no re-encryption.

Each row records ``key_id``, a short fingerprint of the key that encrypted
it (first 8 hex digits of the SHA-256 of the key), so rotation can tell how
many rows still depend on an old key without decrypting anything.
"""

import base64
import binascii
import hashlib
import logging
import os
import threading
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)

ENVELOPE_PREFIX = b"sv1:"
GENERATE_HINT = (
    'generate one with: python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
)


class SecretDecryptionError(Exception):
    """A stored value cannot be read with the configured keys. The message names the secret, never the value."""

    def __init__(self, message, *, secret_name=None, function_name=None):
        super().__init__(message)
        self.secret_name = secret_name
        self.function_name = function_name


class UnknownKey(Exception):
    """No configured key decrypts the token (wrong key, removed key, or a damaged token)."""


class BindingMismatch(Exception):
    """The token decrypts but was made for another secret row."""


def key_fingerprint(key_bytes: bytes) -> str:
    """Short, non-reversible name of a key for the `key_id` column and for messages."""
    return hashlib.sha256(key_bytes).hexdigest()[:8]


def parse_keys(raw: str, *, source: str) -> list[str]:
    """Keys separated by commas or newlines, each a valid Fernet key; errors name the position, never the key."""
    parts = [part.strip() for part in raw.replace("\n", ",").split(",")]
    while parts and not parts[-1]:
        parts.pop()  # a trailing comma or newline is harmless
    if not parts:
        raise ImproperlyConfigured(f"{source} holds no key: {GENERATE_HINT}")
    for position, part in enumerate(parts, start=1):
        where = f"{source}: key {position} of {len(parts)}"
        if not part:
            raise ImproperlyConfigured(f"{where} is empty (two commas in a row?).")
        try:
            decoded = base64.urlsafe_b64decode(part.encode("ascii"))
        except (binascii.Error, UnicodeEncodeError, ValueError):
            decoded = b""
        if len(decoded) != 32:
            raise ImproperlyConfigured(
                f"{where} is not a valid Fernet key (44 characters of url-safe base64 encoding 32 bytes); "
                f"{GENERATE_HINT}"
            )
    return parts


class Keyring:
    """The configured keys: the first encrypts, all decrypt."""

    def __init__(self, keys, *, source="SECRETS_ENCRYPTION_KEYS"):
        if not keys:
            raise ImproperlyConfigured(f"{source} holds no key: {GENERATE_HINT}")
        self.source = source
        self._fernets = [Fernet(key) for key in keys]
        self._multi = MultiFernet(self._fernets)
        self.key_ids = [key_fingerprint(base64.urlsafe_b64decode(key)) for key in keys]

    @property
    def primary_id(self):
        return self.key_ids[0]

    def encrypt(self, value: bytes, *, binding: str) -> tuple[str, str]:
        """(token, key_id) for `value` bound to `binding`."""
        plaintext = ENVELOPE_PREFIX + binding.encode("ascii") + b"\n" + value
        return self._fernets[0].encrypt(plaintext).decode("ascii"), self.primary_id

    def decrypt(self, token: str, *, binding: str) -> bytes:
        try:
            plaintext = self._multi.decrypt(token.encode("ascii"))
        except (InvalidToken, UnicodeEncodeError):
            raise UnknownKey() from None
        header, newline, value = plaintext.partition(b"\n")
        if not newline or header != ENVELOPE_PREFIX + binding.encode("ascii"):
            raise BindingMismatch()
        return value

    def rotate(self, token: str) -> tuple[str, str]:
        """(token re-encrypted with the first key, its key_id); the bound plaintext is unchanged."""
        try:
            return self._multi.rotate(token.encode("ascii")).decode("ascii"), self.primary_id
        except (InvalidToken, UnicodeEncodeError):
            raise UnknownKey() from None


# --- the configured keyring, loaded once per process ----------------------------------

_lock = threading.Lock()
_keyring = None


def _read_or_create_key_file(path: Path) -> str:
    """The key file's text, creating it with a fresh key if it does not exist yet."""
    if path.exists():
        return path.read_text(encoding="ascii")
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written completely under a temporary name, then linked into place: the
    # link fails if another process won the race, and a reader never sees a
    # half-written file.
    partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(Fernet.generate_key().decode("ascii") + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(partial, path)
        except FileExistsError:
            pass
        else:
            logger.warning(
                "Generated the secrets encryption key %s (mode 0600) because SECRETS_ENCRYPTION_KEYS is not set. "
                "Back it up with the database: without it the stored secrets cannot be read.",
                path,
            )
    finally:
        partial.unlink(missing_ok=True)
    return path.read_text(encoding="ascii")


def _load_keyring():
    from django.conf import settings

    keys = list(getattr(settings, "SECRETS_ENCRYPTION_KEYS", None) or [])
    if keys:
        return Keyring(parse_keys(",".join(keys), source="SECRETS_ENCRYPTION_KEYS"))
    if settings.PRODUCTION:
        raise ImproperlyConfigured(f"SECRETS_ENCRYPTION_KEYS must be set in production; {GENERATE_HINT}")
    path = Path(getattr(settings, "SECRETS_KEY_FILE", None) or Path(settings.DATA_DIR) / "secrets.key")
    return Keyring(parse_keys(_read_or_create_key_file(path), source=str(path)), source=str(path))


def keyring() -> Keyring:
    """The keyring of the current settings (loaded, and for the embedded default created, on first use)."""
    global _keyring
    if _keyring is None:
        with _lock:
            if _keyring is None:
                _keyring = _load_keyring()
    return _keyring


def reset_keyring():
    """Forget the loaded keys (the settings changed: tests, or a rotation run in the same process)."""
    global _keyring
    with _lock:
        _keyring = None
