"""Prometheus metrics of the auth service (served by gatehouse_common's /metrics)."""

from __future__ import annotations

from prometheus_client import Counter

# One increment per refused login, labelled by the limit that set its Retry-After
# ("email" or "address"); alerts rely on this name and label.
LOGIN_THROTTLED = Counter(
    "auth_login_throttled_total",
    "Password logins refused with 429 because a failed-login limit was reached.",
    ["limit"],
)
REGISTRATION_THROTTLED = Counter(
    "auth_registration_throttled_total",
    "Registrations refused with 429 because the client address reached its limit.",
)
PASSWORD_HASHING_REFUSED = Counter(
    "auth_password_hashing_refused_total",
    "Password hashes or checks refused with 503 because every slot and queue place was taken.",
)
