import json
from collections import Counter

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from secrets_vault.crypto import UnknownKey, keyring
from secrets_vault.models import Secret


class Command(BaseCommand):
    help = (
        "Re-encrypt every secret value with the first key of SECRETS_ENCRYPTION_KEYS, in batches committed one "
        "by one (safe to interrupt and run again). Afterwards the other keys can be removed. Prints a JSON summary."
    )

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=500, help="rows per transaction (default 500)")
        parser.add_argument("--dry-run", action="store_true", help="only count the values still on other keys")

    def handle(self, *args, batch_size, dry_run, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        ring = keyring()
        primary = ring.primary_id
        if dry_run:
            remaining = Counter(Secret.objects.not_on_key(primary).values_list("key_id", flat=True))
            self.stdout.write(json.dumps(self._summary(ring, remaining=dict(sorted(remaining.items())), dryRun=True)))
            return
        rotated, batches, failed, last_pk = 0, 0, [], 0
        while True:
            ids = list(
                Secret.objects.not_on_key(primary).filter(pk__gt=last_pk).order_by("pk").values_list("pk", flat=True)[
                    :batch_size
                ]
            )
            if not ids:
                break
            last_pk = ids[-1]
            batches += 1
            with transaction.atomic():
                rows = Secret.objects.select_for_update().filter(pk__in=ids).select_related("function__organization")
                for secret in rows:
                    if secret.ciphertext is None or secret.key_id == primary:
                        continue  # changed since the ids were read: nothing left to do
                    try:
                        token, key_id = ring.rotate(secret.ciphertext)
                    except UnknownKey:
                        failed.append(
                            {"id": secret.pk, "organization": secret.function.organization.name,
                             "function": secret.function.name, "secret": secret.name, "keyId": secret.key_id}
                        )
                        continue
                    # Conditional: a value replaced meanwhile (already on the new key) is left alone.
                    rotated += Secret.objects.filter(pk=secret.pk, ciphertext=secret.ciphertext).update(
                        ciphertext=token, key_id=key_id
                    )
        remaining = Counter(Secret.objects.not_on_key(primary).values_list("key_id", flat=True))
        summary = self._summary(
            ring, rotated=rotated, batches=batches, failed=failed, remaining=dict(sorted(remaining.items())),
            # Nothing depends on the other keys any more: they can be removed from SECRETS_ENCRYPTION_KEYS.
            oldKeysRemovable=not remaining,
        )
        self.stdout.write(json.dumps(summary))
        if failed:
            names = ", ".join(f"{f['function']}/{f['secret']} (key {f['keyId'] or 'unknown'})" for f in failed)
            raise CommandError(
                f"{len(failed)} secret value(s) could not be decrypted with any configured key and were left as they "
                f"are: {names}. Add the key they were encrypted with to SECRETS_ENCRYPTION_KEYS and run again, or "
                "set those values again."
            )

    @staticmethod
    def _summary(ring, **fields):
        return {"primaryKey": ring.primary_id, "configuredKeys": ring.key_ids, **fields}
