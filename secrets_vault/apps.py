from django.apps import AppConfig


class SecretsVaultConfig(AppConfig):
    name = "secrets_vault"
    verbose_name = "Secrets vault"

    def ready(self):
        from django.core.signals import setting_changed

        from .crypto import reset_keyring

        def keys_changed(*, setting, **kwargs):
            if setting in {"SECRETS_ENCRYPTION_KEYS", "SECRETS_KEY_FILE", "DATA_DIR", "PRODUCTION"}:
                reset_keyring()

        # Tests switch keys with override_settings; a loaded keyring must not outlive them.
        setting_changed.connect(keys_changed, weak=False, dispatch_uid="secrets_vault.keys_changed")
