from django.conf import settings


def sandbox(request):
    """Tell every page when runs are not isolated, so nobody forgets the operator's choice."""
    return {"sandbox_unsafe": settings.FUNCTIONS_SANDBOX == "process"}
