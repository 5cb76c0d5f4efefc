"""A client of Gatehouse's public API (through the gateway) that remembers every secret it saw."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import httpx2
import pytest

T = TypeVar("T")


@dataclass
class Tokens:
    access_token: str
    refresh_token: str
    scope: str
    expires_in: int

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


@dataclass
class Account:
    email: str
    password: str
    id: str


@dataclass
class Gateway:
    """A client of the public API that remembers every credential it has handled."""

    client: httpx2.Client
    seen_secrets: set[str] = field(default_factory=set)

    def register(
        self, email: str | None = None, password: str | None = None, **extra: str
    ) -> Account:
        """Register an account; ``extra`` adds body members (``display_name``)."""
        email = email or f"user-{uuid.uuid4().hex[:12]}@example.com"
        password = password or secrets.token_urlsafe(18)
        self.seen_secrets.add(password)
        response = self.client.post(
            "/auth/register", json={"email": email, "password": password, **extra}
        )
        assert response.status_code == 201, response.text
        body = response.json()
        return Account(email=body["email"], password=password, id=body["id"])

    def token_request(self, form: dict[str, str]) -> httpx2.Response:
        for key in ("password", "refresh_token", "token"):
            if key in form:
                self.seen_secrets.add(form[key])
        response = self.client.post("/auth/token", data=form)
        if response.status_code == 200:
            body = response.json()
            self.seen_secrets.update((body["access_token"], body["refresh_token"]))
        return response

    def login_response(self, account: Account) -> httpx2.Response:
        return self.token_request(
            {"grant_type": "password", "username": account.email, "password": account.password}
        )

    def login(self, account: Account) -> Tokens:
        response = self.login_response(account)
        assert response.status_code == 200, response.text
        return self.tokens(response)

    def refresh(self, refresh_token: str) -> httpx2.Response:
        return self.token_request({"grant_type": "refresh_token", "refresh_token": refresh_token})

    def revoke(self, token: str) -> httpx2.Response:
        self.seen_secrets.add(token)
        return self.client.post("/auth/revoke", data={"token": token})

    def verify_email(self, token: str) -> httpx2.Response:
        self.seen_secrets.add(token)
        return self.client.post("/auth/verify", json={"token": token})

    def change_password(
        self, tokens: Tokens, current_password: str, new_password: str
    ) -> httpx2.Response:
        """POST /auth/password as the login of ``tokens``; answers 200 with a new login."""
        self.seen_secrets.update((current_password, new_password))
        response = self.client.post(
            "/auth/password",
            json={"current_password": current_password, "new_password": new_password},
            headers=tokens.bearer,
        )
        if response.status_code == 200:
            body = response.json()
            self.seen_secrets.update((body["access_token"], body["refresh_token"]))
        return response

    def forgot_password(self, email: str) -> httpx2.Response:
        return self.client.post("/auth/password/forgot", json={"email": email})

    def reset_password(self, token: str, new_password: str) -> httpx2.Response:
        self.seen_secrets.update((token, new_password))
        return self.client.post(
            "/auth/password/reset", json={"token": token, "new_password": new_password}
        )

    @staticmethod
    def wait_until(
        probe: Callable[[], T | None], *, timeout: float = 60.0, interval: float = 0.5
    ) -> T:
        """Call ``probe`` until it returns something other than None; fail after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            result = probe()
            if result is not None:
                return result
            if time.monotonic() > deadline:
                pytest.fail(f"gave up after {timeout:g}s waiting for {probe.__name__}")
            time.sleep(interval)

    @staticmethod
    def tokens(response: httpx2.Response) -> Tokens:
        body = response.json()
        return Tokens(
            access_token=body["access_token"],
            refresh_token=body["refresh_token"],
            scope=body["scope"],
            expires_in=body["expires_in"],
        )
