"""An organization's new time zone moves the schedules that follow it, in the same transaction.

A signal because accounts (below every other app) cannot call schedules
without an import cycle, and every way of changing an organization (a page,
the admin shell, a future API) must move them.
"""

from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver

from accounts.models import Organization

from .services import schedules_follow_organization


@receiver(pre_save, sender=Organization, dispatch_uid="schedules_organization_timezone_before")
def _remember_timezone(sender, instance, raw=False, **kwargs):
    if raw or instance.pk is None:
        return
    instance._timezone_before = Organization.objects.filter(pk=instance.pk).values_list("timezone", flat=True).first()


@receiver(post_save, sender=Organization, dispatch_uid="schedules_organization_timezone_after")
def _follow_timezone(sender, instance, created=False, raw=False, **kwargs):
    before = getattr(instance, "_timezone_before", None)
    if raw or created or before is None or before == instance.timezone:
        return
    schedules_follow_organization(organization=instance)
