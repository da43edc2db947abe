import zoneinfo

from django.utils import timezone

from .models import Organization


class OrganizationTimezoneMiddleware:
    """Pages of an organization show times in its time zone (CONTRACT: the organization's by default)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        org_id = view_kwargs.get("org_id")
        zone = None
        if org_id is not None and request.user.is_authenticated:
            # Only a member's request reveals anything; others get 404 from the view anyway.
            zone = (
                Organization.objects.filter(pk=org_id, memberships__user=request.user)
                .values_list("timezone", flat=True)
                .first()
            )
        if zone:
            timezone.activate(zoneinfo.ZoneInfo(zone))
        else:
            timezone.deactivate()
        return None
