"""Who is calling: ``public/auth`` grants and the three HTTP ``Authorization`` schemes.

- ``Bearer <access_token>`` from ``public/auth`` (tokens expire by the injected clock);
- ``Basic base64(client_id:client_secret)``;
- ``deri-hmac-sha256 id=..,ts=..,sig=..,nonce=..`` where ``sig`` is the hex HMAC-SHA256, keyed
  by the secret, of ``ts\\nnonce\\nMETHOD\\nURI\\nBODY\\n`` and URI is the request target exactly
  as sent (raw path, ``?``, raw query). ``ts`` must be within 60 s of the clock; nonces are
  not checked for reuse (ccxt reuses them within a millisecond).

Credentials: with ``allowed_credentials`` the pairs are pinned and anything else is refused
(13004 for a wrong id or secret, 13009 for a bad signature or token, 10000 when nothing usable
was sent). Without, the exchange is a sandbox: the first secret seen for a client id is
remembered, later requests must match it, and a signature from an id whose secret was never
sent cannot be verified and is accepted (its timestamp is still checked).

Tokens are derived from the seed, client id and a counter so that sessions replay
byte-identically; the paper exchange is a test double, not a security boundary.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bastion.clock import Clock
from bastion.simulators.paper.errors import (
    AUTHORIZATION_REQUIRED,
    INVALID_CREDENTIALS,
    UNAUTHORIZED,
    RpcError,
    invalid_argument,
)
from bastion.simulators.paper.params import Params

__all__ = ["SIGNATURE_WINDOW_MS", "Authenticator", "request_signature", "signature"]

SIGNATURE_WINDOW_MS = 60_000
GRANT_TYPES = ("client_credentials", "client_signature", "refresh_token")
SCOPE = "connection mainaccount"
_REFRESH_TTL_FACTOR = 10


def signature(secret: str, timestamp: int | str, nonce: str, data: str) -> str:
    """Hex HMAC-SHA256 of ``timestamp\\nnonce\\ndata`` (``public/auth`` client_signature)."""
    message = f"{timestamp}\n{nonce}\n{data}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def request_signature(
    secret: str, *, timestamp: int | str, nonce: str, method: str, target: str, body: str
) -> str:
    """The ``sig`` of a ``deri-hmac-sha256`` header for one HTTP request."""
    return signature(secret, timestamp, nonce, f"{method.upper()}\n{target}\n{body}\n")


@dataclass(frozen=True, slots=True)
class _Token:
    client_id: str
    expires_at: float


def _fail(code: int, reason: str) -> RpcError:
    return RpcError(code, data={"reason": reason})


class Authenticator:
    """Issues tokens and maps each request's credentials to a client id."""

    def __init__(
        self,
        *,
        clock: Clock,
        seed: int,
        allowed_credentials: Mapping[str, str] | None = None,
        token_ttl_seconds: int = 900,
    ) -> None:
        self._clock = clock
        self._seed = seed
        self._pinned = bool(allowed_credentials)
        self._secrets = dict(allowed_credentials or {})
        self._ttl = token_ttl_seconds
        self._access: dict[str, _Token] = {}
        self._refresh: dict[str, _Token] = {}
        self._issued = 0

    # -- secrets --------------------------------------------------------------------------
    def _check_secret(self, client_id: str, secret: str) -> None:
        known = self._secrets.get(client_id)
        if known is None and not self._pinned:
            self._secrets[client_id] = secret
            return
        if known is None or not hmac.compare_digest(known.encode(), secret.encode()):
            raise _fail(INVALID_CREDENTIALS, "unknown client_id or wrong client_secret")

    def _secret_for(self, client_id: str) -> str | None:
        known = self._secrets.get(client_id)
        if known is None and self._pinned:
            raise _fail(INVALID_CREDENTIALS, "unknown client_id")
        return known

    def _check_timestamp(self, timestamp: int) -> None:
        now_ms = round(self._clock.time() * 1000)
        if abs(now_ms - timestamp) > SIGNATURE_WINDOW_MS:
            raise _fail(UNAUTHORIZED, f"timestamp {timestamp} is more than 60 s from {now_ms}")

    # -- public/auth ----------------------------------------------------------------------
    def grant(self, params: Params) -> dict[str, Any]:
        """The ``public/auth`` result for one of the three grant types."""
        grant_type = params.choice("grant_type", GRANT_TYPES)
        if grant_type == "client_credentials":
            client_id = params.text("client_id")
            self._check_secret(client_id, params.text("client_secret"))
        elif grant_type == "client_signature":
            client_id = params.text("client_id")
            timestamp = params.integer("timestamp")
            sent = params.text("signature")
            self._check_timestamp(timestamp)
            secret = self._secret_for(client_id)
            expected = None
            if secret is not None:
                expected = signature(
                    secret, timestamp, params.text("nonce", ""), params.text("data", "")
                )
            if expected is not None and not hmac.compare_digest(expected, sent):
                raise _fail(INVALID_CREDENTIALS, "signature does not match")
        else:
            client_id = self._redeem(params.text("refresh_token"))
        result = self._issue(client_id, self._lifetime(params.text("scope", "")))
        if "state" in params:
            result["state"] = params.text("state")
        return result

    def _lifetime(self, scope: str) -> int:
        for part in scope.split():
            if part.startswith("expires:"):
                try:
                    seconds = int(part.removeprefix("expires:"))
                except ValueError:
                    raise invalid_argument("scope", "expires:N needs whole seconds") from None
                if seconds <= 0:
                    raise invalid_argument("scope", "expires:N needs a positive N")
                return seconds
        return self._ttl

    def _redeem(self, refresh_token: str) -> str:
        token = self._refresh.pop(refresh_token, None)
        if token is None or token.expires_at <= self._clock.time():
            raise _fail(UNAUTHORIZED, "invalid or expired refresh_token")
        return token.client_id

    def _token(self, client_id: str, kind: str) -> str:
        self._issued += 1
        material = f"{self._seed}:{client_id}:{self._issued}:{kind}".encode()
        return f"{kind}.{hashlib.sha256(material).hexdigest()[:40]}"

    def _issue(self, client_id: str, ttl: int) -> dict[str, Any]:
        now = self._clock.time()
        access = self._token(client_id, "access")
        refresh = self._token(client_id, "refresh")
        self._access[access] = _Token(client_id, now + ttl)
        self._refresh[refresh] = _Token(client_id, now + ttl * _REFRESH_TTL_FACTOR)
        return {
            "access_token": access,
            "token_type": "bearer",
            "expires_in": ttl,
            "refresh_token": refresh,
            "scope": SCOPE,
            "enabled_features": [],
        }

    # -- private requests -----------------------------------------------------------------
    def identify(self, authorization: str | None, *, method: str, target: str, body: str) -> str:
        """The client id behind a private request's ``Authorization`` header."""
        if not authorization:
            raise _fail(AUTHORIZATION_REQUIRED, "missing Authorization header")
        scheme, _, credentials = authorization.strip().partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer":
            return self._bearer(credentials.strip())
        if scheme == "basic":
            return self._basic(credentials.strip())
        if scheme == "deri-hmac-sha256":
            return self._hmac(credentials, method=method, target=target, body=body)
        raise _fail(AUTHORIZATION_REQUIRED, f"unsupported authorization scheme {scheme!r}")

    def _bearer(self, token: str) -> str:
        entry = self._access.get(token)
        if entry is None:
            raise _fail(UNAUTHORIZED, "invalid token")
        if entry.expires_at <= self._clock.time():
            del self._access[token]
            raise _fail(UNAUTHORIZED, "token expired")
        return entry.client_id

    def _basic(self, credentials: str) -> str:
        try:
            decoded = base64.b64decode(credentials, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise _fail(AUTHORIZATION_REQUIRED, "malformed Basic credentials") from None
        client_id, sep, secret = decoded.partition(":")
        if not sep or not client_id:
            raise _fail(AUTHORIZATION_REQUIRED, "Basic credentials must be client_id:client_secret")
        self._check_secret(client_id, secret)
        return client_id

    def _hmac(self, credentials: str, *, method: str, target: str, body: str) -> str:
        fields = dict(part.strip().partition("=")[::2] for part in credentials.split(","))
        client_id, ts, sent = fields.get("id", ""), fields.get("ts", ""), fields.get("sig", "")
        if not client_id or not ts.isdigit() or not sent:
            raise _fail(AUTHORIZATION_REQUIRED, "deri-hmac-sha256 needs id, ts and sig")
        self._check_timestamp(int(ts))
        secret = self._secret_for(client_id)
        if secret is not None:
            nonce = fields.get("nonce", "")
            expected = request_signature(
                secret, timestamp=ts, nonce=nonce, method=method, target=target, body=body
            )
            if not hmac.compare_digest(expected, sent):
                raise _fail(UNAUTHORIZED, "invalid signature")
        return client_id
