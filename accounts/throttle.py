"""Throttling of sign-in and of API tokens tried at random, on django-axes.

Sign-in: axes' backend and middleware (settings: AUTHENTICATION_BACKENDS,
MIDDLEWARE, AXES_*) count failures per account and per source address and
refuse the form with the throttled page while either is over the limit; the
lock ends by itself LOGIN_LOCKOUT_MINUTES after the last failure.

API tokens: the REST API's token authentication calls ``token_auth_throttled``
before it looks a token up and ``token_auth_failed`` when the token is
unknown, expired or revoked. Those failures are recorded by axes as well,
keyed by the source address (a random token names no account), so one
address guessing tokens, or mixing guessed tokens and passwords, is stopped
at the same limit.
"""

import ipaddress
import logging
import math
import uuid

from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_cool_off
from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.dispatch import receiver
from django.http import JsonResponse
from django.shortcuts import render

logger = logging.getLogger("accounts.throttle")

# The account name a guessed API token is recorded under: not a possible e-mail address.
_TOKEN_ACCOUNT = "(api token from {address})"


def client_address(request):
    """The source address of a request: REMOTE_ADDR, or what the TLS proxy saw.

    Behind the proxy (BEHIND_TLS_PROXY=true) REMOTE_ADDR is the proxy itself,
    which would lock every user out together; the proxy appends the address
    it saw to X-Forwarded-For, and only that last entry can be trusted (a
    client can write anything before it).
    """
    if settings.SECURE_PROXY_SSL_HEADER:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        if forwarded and _is_address(forwarded[-1]):
            return forwarded[-1]
    address = request.META.get("REMOTE_ADDR")
    # None without one (a test client's force_login): axes stores addresses in an inet column.
    return address if _is_address(address) else None


def _is_address(text):
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def lockout_response(request, original_response=None, credentials=None):
    """The sign-in form refused while throttled: 429 and one generic message.

    The same words whether the account exists or not, and whether the
    account or the address is locked, so the page tells a guesser nothing.
    """
    seconds = max(1, math.ceil(get_cool_off(request).total_seconds()))
    if request.path.startswith("/api/"):
        # The REST API's clients read JSON in the API's error shape, not a sign-in page.
        response = JsonResponse(
            {
                "message": "Too many requests with unknown, expired or revoked tokens from this address. "
                f"Retry after {seconds} s.",
                "requestId": getattr(request, "api_request_id", None) or str(uuid.uuid4()),
            },
            status=429,
        )
        response["Retry-After"] = str(seconds)
        return response
    return render(
        request, "registration/login_throttled.html",
        {"minutes": max(1, math.ceil(get_cool_off(request).total_seconds() / 60))}, status=429,
    )


def _token_credentials(request):
    return {"username": _TOKEN_ACCOUNT.format(address=client_address(request))}


def token_auth_throttled(*, request):
    """Seconds the caller must wait before trying a token again (for Retry-After), or 0 when it may."""
    if AxesProxyHandler.is_allowed(request, _token_credentials(request)):
        return 0
    return math.ceil(get_cool_off(request).total_seconds())


def token_auth_failed(*, request):
    """Record an unknown, expired or revoked token presented by this request's source address."""
    user_login_failed.send(sender=__name__, credentials=_token_credentials(request), request=request)


@receiver(user_locked_out)
def _log_lockout(sender, request=None, username=None, ip_address=None, **kwargs):
    """One line an operator can act on: who, from where, for how long, and how to lift it early."""
    seconds = round(get_cool_off(request).total_seconds())
    duration = f"{seconds // 60} minutes" if seconds >= 120 else f"{seconds} seconds"
    if username and username.startswith("(api token"):
        what, lift = "API token guesses", f"manage.py axes_reset_ip {ip_address}"
    else:
        what, lift = f"sign-in to account {username!r}", (
            f"manage.py axes_reset_username {username} (or axes_reset_ip {ip_address})"
        )
    logger.warning(
        "throttled: %s from %s after %s failures; refused for %s after the last failure; to lift early: %s",
        what, ip_address, settings.AXES_FAILURE_LIMIT, duration, lift,
    )
