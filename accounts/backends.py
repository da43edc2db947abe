"""The sign-in throttle as an authentication backend (settings.AUTHENTICATION_BACKENDS)."""

from axes.backends import AxesStandaloneBackend


class ThrottleBackend(AxesStandaloneBackend):
    """django-axes' lockout check, for requests only.

    axes refuses authenticate() calls without a request; an operator's
    command or a script checking a password has no source address to
    throttle, so it passes here and the next backend decides as before.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
