"""Deribit API v2 over HTTP JSON-RPC: the :class:`~bastion.exchange.base.Exchange` for Deribit.

One implementation serves every venue that speaks Deribit: the in-process paper exchange
(``transport=httpx.ASGITransport(app)``, ``base_url="http://paper"``), a loopback server,
testnet and mainnet. Each request is ``POST {base_url}/api/v2/{method}`` with a JSON-RPC body
(typed params, increasing ids) and goes through the injected
:class:`~bastion.resilience.Resilience` (``resilience=``; a private one on ``clock`` otherwise),
so it is halt-aware, time-bounded, retried per policy, guarded by the venue's circuit breaker
(one breaker named after the client, shared by all methods), classified and measured.

Authentication is OAuth-style: ``public/auth`` with ``client_credentials`` yields a bearer token,
refreshed with ``grant_type=refresh_token`` once it is within ``refresh_margin`` seconds of
expiry on the injected clock (and re-obtained with the credentials if the refresh is refused).
A private call rejected for auth follows the policy row for ``AUTH``: the choke point calls
back to re-authenticate and retries once. For ``private/buy`` and ``private/sell`` a retry is
safe only after a failure that proves the order was never accepted (auth, rate limit, circuit
open); a timeout, a dropped connection or a 5xx is never retried for them.

With ``websocket=`` (a :class:`~bastion.exchange.deribit_ws.DeribitWsSession`) every request
travels as a JSON-RPC frame on that one authenticated socket instead, still through the choke
point; the socket carries cancel-on-disconnect when the session asks for it.

Deribit's JSON-RPC error codes are translated here, at the edge, and nowhere else
(:data:`DERIBIT_CODES`, :func:`code_for_deribit`, :func:`rpc_error`; the WebSocket session uses
the same table): :func:`bastion.errors.classify` gets our :class:`~bastion.errors.ErrorCode`
with the raw code for the record, and the rest of Bastion reasons in ErrorCodes only. Parsing
instruments, the client also says in which unit each one's amounts are
(:attr:`~bastion.market.Instrument.amount_unit`): USD for inverse futures and perpetuals, coin
for options and linear instruments.

The client secret is a :class:`~pydantic.SecretStr`, read only to build the ``public/auth``
body; it and the tokens never appear in a repr, a message or an exception.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, cast

import httpx
import orjson
from pydantic import SecretStr

from bastion.clock import Clock
from bastion.errors import (
    BastionError,
    ErrorCode,
    ExchangeError,
    UsageError,
    classify,
    parse_retry_after,
)
from bastion.exchange.deribit_errors import DERIBIT_CODES, code_for_deribit, rpc_error
from bastion.exchange.deribit_ws import DeribitWsSession
from bastion.market import (
    AccountSummary,
    AmountUnit,
    Direction,
    Fill,
    Instrument,
    InstrumentKind,
    Order,
    OrderRequest,
    OrderState,
    Position,
    Ticker,
)
from bastion.resilience import Resilience
from bastion.sensitive import mask_url
from bastion.telemetry.metrics import Metrics

__all__ = ["DERIBIT_CODES", "DeribitClient", "HaltCheck", "code_for_deribit", "rpc_error"]

T = TypeVar("T")

_ORDER_METHODS = frozenset({"private/buy", "private/sell"})
_KINDS: frozenset[str] = frozenset({"option", "future"})
_DIRECTIONS: frozenset[str] = frozenset({"buy", "sell"})
_ORDER_STATES: frozenset[str] = frozenset(
    {"open", "filled", "rejected", "cancelled", "untriggered", "triggered"}
)
_REDACTED = "[REDACTED]"


class _InvalidResponse(Exception):
    """A reply that parsed as JSON but does not have the shape Deribit documents."""


@dataclass(frozen=True, slots=True)
class _Token:
    """A bearer token, when it expires and when to refresh it (clock seconds)."""

    access: str = field(repr=False)
    refresh: str | None = field(repr=False)
    expires_at: float
    refresh_at: float


class HaltCheck(Protocol):
    """Raises :class:`HaltedError` when an order may not go out now (the halt's ``check``).

    ``reduce_only`` says whether the order can only shrink a position: a *reducing* halt lets
    those through, a full halt nothing.
    """

    def __call__(self, *, reduce_only: bool = False) -> None: ...


class DeribitClient:
    """Deribit JSON-RPC over HTTP. ``name`` labels the dependency in metrics and messages."""

    def __init__(
        self,
        *,
        base_url: str,
        client_id: str,
        client_secret: SecretStr,
        clock: Clock,
        timeout: float = 10.0,
        refresh_margin: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
        metrics: Metrics | None = None,
        halt_check: HaltCheck | None = None,
        name: str = "deribit",
        resilience: Resilience | None = None,
        websocket: DeribitWsSession | None = None,
    ) -> None:
        if not isinstance(client_secret, SecretStr):
            raise UsageError("client_secret must be a pydantic SecretStr, never a plain str")
        self.name = name
        self._base_url = base_url.rstrip("/")
        self._client_id = client_id
        self._secret = client_secret
        self._clock = clock
        self._timeout = timeout
        self._refresh_margin = refresh_margin
        self._resilience = resilience or Resilience(clock=clock, metrics=metrics)
        self._halt_check = halt_check
        self._ws = websocket
        self._ids = itertools.count(1)
        self._token: _Token | None = None
        self._auth_lock = asyncio.Lock()
        self._http = httpx.AsyncClient(
            base_url=self._base_url,
            transport=transport,
            timeout=timeout,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"DeribitClient(name={self.name!r}, base_url={mask_url(self._base_url)!r}, "
            f"client_id={self._client_id!r})"
        )

    # -- public market data -------------------------------------------------------------

    async def get_time(self) -> int:
        """Exchange time in epoch milliseconds."""
        return await self._public("public/get_time", {}, _as_int)

    async def get_instruments(
        self, currency: str, kind: InstrumentKind | None = None
    ) -> list[Instrument]:
        """Active instruments of ``currency``; kinds other than option and future are skipped."""
        params: dict[str, Any] = {"currency": currency}
        if kind is not None:
            params["kind"] = kind
        return await self._public("public/get_instruments", params, _instruments)

    async def get_index_price(self, currency: str) -> float:
        """The ``<currency>_usd`` index."""
        return await self._public(
            "public/get_index_price",
            {"index_name": f"{currency.lower()}_usd"},
            lambda r: _float(r["index_price"]),
        )

    async def get_ticker(self, instrument_name: str) -> Ticker:
        return await self._public("public/ticker", {"instrument_name": instrument_name}, _ticker)

    # -- private account state ----------------------------------------------------------

    async def get_account_summary(self, currency: str) -> AccountSummary:
        return await self._private(
            "private/get_account_summary", {"currency": currency}, _account_summary
        )

    async def get_positions(self, currency: str) -> list[Position]:
        """Positions as Deribit lists them (zero-size ones included); ``size`` is signed."""
        return await self._private("private/get_positions", {"currency": currency}, _positions)

    async def get_open_orders(self, currency: str) -> list[Order]:
        return await self._private(
            "private/get_open_orders_by_currency", {"currency": currency}, _orders
        )

    async def get_order_state(self, order_id: str) -> Order:
        return await self._private("private/get_order_state", {"order_id": order_id}, _order)

    async def get_order_state_by_label(self, currency: str, label: str) -> list[Order]:
        """Every order of ``currency`` that carries ``label``, open or closed (Deribit's
        ``private/get_order_state_by_label``): how a restart finds a send whose answer it lost."""
        return await self._private(
            "private/get_order_state_by_label", {"currency": currency, "label": label}, _orders
        )

    async def get_user_trades(self, currency: str, count: int = 100) -> list[Fill]:
        """Our most recent fills in ``currency`` (at most ``count``)."""
        return await self._private(
            "private/get_user_trades_by_currency",
            {"currency": currency, "count": count},
            lambda r: [_fill(t) for t in _list(r["trades"])],
        )

    # -- orders ---------------------------------------------------------------------------

    async def place_order(self, request: OrderRequest) -> Order:
        """Send ``private/buy`` or ``private/sell``; halted when ``halt_check`` says so."""
        if request.order_type == "limit" and request.price is None:
            raise UsageError(f"limit order on {request.instrument_name} needs a price")
        params: dict[str, Any] = {
            "instrument_name": request.instrument_name,
            "amount": request.amount,
            "type": request.order_type,
            "reduce_only": request.reduce_only,
            "post_only": request.post_only,
            "time_in_force": request.time_in_force,
        }
        if request.order_type == "limit":
            params["price"] = request.price
        if request.label:
            params["label"] = request.label
        return await self._private(
            f"private/{request.direction}",
            params,
            lambda r: _order(r["order"]),
            reduce_only=request.reduce_only,
        )

    async def cancel_order(self, order_id: str) -> Order:
        return await self._private("private/cancel", {"order_id": order_id}, _order)

    async def cancel_all(self) -> int:
        """Cancel every resting order on the account; returns how many were cancelled."""
        return await self._private("private/cancel_all", {}, _as_int)

    async def close(self) -> None:
        """Close the HTTP client this object created (and with it its transport). Idempotent."""
        if not self._closed:
            self._closed = True
            await self._http.aclose()
            if self._ws is not None:
                await self._ws.close()

    # -- plumbing -------------------------------------------------------------------------

    async def _public(self, method: str, params: dict[str, Any], parse: Callable[[Any], T]) -> T:
        return await self._call(method, params, parse, token=None)

    async def _private(
        self,
        method: str,
        params: dict[str, Any],
        parse: Callable[[Any], T],
        *,
        reduce_only: bool = False,
    ) -> T:
        if self._ws is not None:  # the socket itself is authenticated
            return await self._call(method, params, parse, token=None, reduce_only=reduce_only)
        token = [await self._access_token()]

        async def refresh(error: BastionError) -> None:
            # The token was refused, which proves the request (an order too) was not accepted.
            await self._invalidate(token[0])
            token[0] = await self._access_token()

        return await self._call(
            method, params, parse, token=token, refresh=refresh, reduce_only=reduce_only
        )

    async def _call(
        self,
        method: str,
        params: dict[str, Any],
        parse: Callable[[Any], T],
        *,
        token: list[str] | None,
        refresh: Callable[[BastionError], Awaitable[None]] | None = None,
        reduce_only: bool = False,
    ) -> T:
        dependency = f"{self.name} {method}"
        halt_check = self._halt_check
        checked = None if halt_check is None else lambda: halt_check(reduce_only=reduce_only)

        async def send_frame(ws: DeribitWsSession) -> T:
            result = await ws.request(method, params)
            try:
                return parse(result)
            except (AttributeError, KeyError, TypeError, ValueError, _InvalidResponse) as exc:
                why = f"unexpected result shape: {type(exc).__name__} {exc}"
                raise classify(
                    dependency=dependency, invalid=self._redact(why), error_class=ExchangeError
                ) from exc

        async def send() -> T:
            if self._ws is not None:
                return await send_frame(self._ws)
            body = orjson.dumps(
                {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
            )
            headers = {"Authorization": f"Bearer {token[0]}"} if token is not None else None
            response = await self._http.post(f"/api/v2/{method}", content=body, headers=headers)
            result = self._unwrap(dependency, response)
            try:
                return parse(result)
            except (AttributeError, KeyError, TypeError, ValueError, _InvalidResponse) as exc:
                why = f"unexpected result shape: {type(exc).__name__} {exc}"
                raise self._invalid(dependency, response, why) from exc

        return await self._resilience.call(
            dependency,
            send,
            layer="exchange",
            timeout=self._timeout,
            sends_order=method in _ORDER_METHODS,
            halt_check=checked,
            breaker=self.name,
            refresh=refresh,
        )

    def _unwrap(self, dependency: str, response: httpx.Response) -> Any:
        """The ``result`` of a JSON-RPC reply, or the :class:`ExchangeError` it stands for."""
        status = response.status_code
        try:
            envelope = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            envelope = None
        if isinstance(envelope, dict):
            error = envelope.get("error")
            if isinstance(error, dict) and isinstance(error.get("code"), int):
                raise self._rpc_error(dependency, response, error)
            if "result" in envelope and response.is_success:
                return envelope["result"]
        if response.is_success:
            what = "no result or error" if isinstance(envelope, dict) else "a non-JSON body"
            raise self._invalid(dependency, response, f"HTTP {status} with {what}")
        raise classify(
            dependency=dependency,
            http_status=status,
            retry_after=self._retry_after(response),
            error_class=ExchangeError,
        )

    def _rpc_error(
        self, dependency: str, response: httpx.Response, error: dict[str, Any]
    ) -> BastionError:
        return rpc_error(
            dependency,
            error,
            redact=self._redact,
            http_status=response.status_code,
            retry_after=self._retry_after(response),
        )

    def _invalid(self, dependency: str, response: httpx.Response, why: str) -> BastionError:
        return classify(
            dependency=dependency,
            invalid=self._redact(why),
            http_status=response.status_code,
            error_class=ExchangeError,
        )

    def _retry_after(self, response: httpx.Response) -> float | None:
        """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date), if any."""
        return parse_retry_after(response.headers.get("Retry-After"), now=self._clock.time())

    def _redact(self, text: str) -> str:
        """Remove the secret and live tokens from text that came from the far side."""
        secrets = [self._secret.get_secret_value()]
        if self._token is not None:
            secrets.append(self._token.access)
            if self._token.refresh:
                secrets.append(self._token.refresh)
        for secret in secrets:
            if secret:
                text = text.replace(secret, _REDACTED)
        return text

    # -- authentication -------------------------------------------------------------------

    async def _access_token(self) -> str:
        """A token good for at least ``refresh_margin`` more seconds, refreshing if needed."""
        async with self._auth_lock:
            token = self._token
            if token is not None and self._clock.time() < token.refresh_at:
                return token.access
            if token is not None and token.refresh:
                try:
                    return await self._authenticate(
                        {"grant_type": "refresh_token", "refresh_token": token.refresh}
                    )
                except ExchangeError as exc:
                    if exc.code is not ErrorCode.AUTH:
                        raise
            return await self._authenticate(
                {
                    "grant_type": "client_credentials",
                    "client_id": self._client_id,
                    "client_secret": self._secret.get_secret_value(),
                }
            )

    async def _authenticate(self, params: dict[str, Any]) -> str:
        started = self._clock.time()
        access, refresh, ttl = await self._call("public/auth", params, _token_fields, token=None)
        # A margin as long as the token's life would refresh on every call; cap it at half.
        margin = min(self._refresh_margin, ttl / 2)
        self._token = _Token(access, refresh, started + ttl, started + ttl - margin)
        return access

    async def _invalidate(self, refused: str) -> None:
        """Forget ``refused`` so the next private call authenticates from scratch."""
        async with self._auth_lock:
            if self._token is not None and self._token.access == refused:
                self._token = None


# -- result mapping: raw Deribit JSON to the frozen models ---------------------------------


def _float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _InvalidResponse(f"expected a number, got {type(value).__name__}")
    return float(value)


def _opt_float(value: Any) -> float | None:
    return None if value is None else _float(value)


def _as_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _InvalidResponse(f"expected an integer, got {type(value).__name__}")
    return value


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise _InvalidResponse(f"expected a list, got {type(value).__name__}")
    return value


def _one_of(value: Any, allowed: frozenset[str], field: str) -> str:
    if value not in allowed:
        raise _InvalidResponse(f"unexpected {field} {value!r}")
    return cast("str", value)


def _token_fields(raw: Any) -> tuple[str, str | None, float]:
    access = raw["access_token"]
    if not isinstance(access, str) or not access:
        raise _InvalidResponse("no access_token")
    refresh = raw.get("refresh_token")
    return access, refresh if isinstance(refresh, str) else None, _float(raw["expires_in"])


def _amount_unit(raw: Any, kind: str) -> AmountUnit:
    """USD for inverse (``reversed``) futures and perpetuals; coin for options and linear ones.

    ``instrument_type`` is optional in Deribit's schema; without it, a future settled in its
    own base coin is inverse (``BTC-PERPETUAL``), one settled in another (``BTC_USDC-…``) linear.
    """
    if kind != "future":
        return "coin"
    instrument_type = raw.get("instrument_type")
    if instrument_type is not None:
        return "coin" if instrument_type == "linear" else "usd"
    settlement = raw.get("settlement_currency")
    return "usd" if settlement in (None, raw.get("base_currency")) else "coin"


def _instrument(raw: Any) -> Instrument:
    option_type = raw.get("option_type")
    if option_type not in (None, "call", "put"):
        raise _InvalidResponse(f"unexpected option_type {option_type!r}")
    kind = cast("InstrumentKind", _one_of(raw["kind"], _KINDS, "kind"))
    return Instrument(
        name=str(raw["instrument_name"]),
        kind=kind,
        currency=str(raw["base_currency"]),
        expiration_ms=_as_int(raw["expiration_timestamp"]),
        tick_size=_float(raw["tick_size"]),
        min_trade_amount=_float(raw["min_trade_amount"]),
        contract_size=_float(raw["contract_size"]),
        strike=_opt_float(raw.get("strike")),
        option_type=option_type,
        settlement_period=str(raw.get("settlement_period", "month")),
        amount_unit=_amount_unit(raw, kind),
    )


def _instruments(raw: Any) -> list[Instrument]:
    return [_instrument(item) for item in _list(raw) if item.get("kind") in _KINDS]


def _side_price(price: Any, amount: Any) -> float | None:
    """A best bid/ask price; an empty side (null, or 0 for 0) is None."""
    if price is None or (price == 0 and not amount):
        return None
    return _float(price)


def _ticker(raw: Any) -> Ticker:
    greeks = raw.get("greeks") or {}
    return Ticker(
        instrument_name=str(raw["instrument_name"]),
        timestamp_ms=_as_int(raw["timestamp"]),
        mark_price=_float(raw["mark_price"]),
        index_price=_float(raw["index_price"]),
        best_bid_price=_side_price(raw.get("best_bid_price"), raw.get("best_bid_amount")),
        best_ask_price=_side_price(raw.get("best_ask_price"), raw.get("best_ask_amount")),
        best_bid_amount=_float(raw.get("best_bid_amount") or 0.0),
        best_ask_amount=_float(raw.get("best_ask_amount") or 0.0),
        last_price=_opt_float(raw.get("last_price")),
        underlying_price=_opt_float(raw.get("underlying_price")),
        mark_iv=_opt_float(raw.get("mark_iv")),
        delta=_opt_float(greeks.get("delta")),
        gamma=_opt_float(greeks.get("gamma")),
        vega=_opt_float(greeks.get("vega")),
        theta=_opt_float(greeks.get("theta")),
    )


def _account_summary(raw: Any) -> AccountSummary:
    return AccountSummary(
        currency=str(raw["currency"]),
        balance=_float(raw["balance"]),
        equity=_float(raw["equity"]),
        available_funds=_float(raw["available_funds"]),
        initial_margin=_float(raw["initial_margin"]),
        maintenance_margin=_float(raw["maintenance_margin"]),
        total_pl=_float(raw.get("total_pl", 0.0)),
        delta_total=_float(raw.get("delta_total", 0.0)),
    )


def _position(raw: Any) -> Position:
    size = _float(raw["size"])
    if raw.get("direction") == "sell" and size > 0:  # Deribit signs it already; be sure
        size = -size
    return Position(
        instrument_name=str(raw["instrument_name"]),
        kind=cast("InstrumentKind", _one_of(raw["kind"], _KINDS, "kind")),
        size=size,
        average_price=_float(raw.get("average_price", 0.0)),
        mark_price=_float(raw.get("mark_price", 0.0)),
        delta=_float(raw.get("delta", 0.0)),
        floating_profit_loss=_float(raw.get("floating_profit_loss", 0.0)),
    )


def _positions(raw: Any) -> list[Position]:
    return [_position(item) for item in _list(raw) if item.get("kind") in _KINDS]


def _order(raw: Any) -> Order:
    price = raw.get("price")
    return Order(
        order_id=str(raw["order_id"]),
        instrument_name=str(raw["instrument_name"]),
        direction=cast("Direction", _one_of(raw["direction"], _DIRECTIONS, "direction")),
        order_type=str(raw["order_type"]),
        order_state=cast("OrderState", _one_of(raw["order_state"], _ORDER_STATES, "state")),
        amount=_float(raw["amount"]),
        filled_amount=_float(raw.get("filled_amount") or 0.0),
        price=None if price is None or price == "market_price" else _float(price),
        average_price=_float(raw.get("average_price") or 0.0),
        label=str(raw.get("label") or ""),
        creation_ms=_as_int(raw["creation_timestamp"]),
        last_update_ms=_as_int(raw["last_update_timestamp"]),
        reduce_only=bool(raw.get("reduce_only", False)),
        time_in_force=str(raw.get("time_in_force", "good_til_cancelled")),
        cancel_reason=None if raw.get("cancel_reason") is None else str(raw["cancel_reason"]),
    )


def _orders(raw: Any) -> list[Order]:
    return [_order(item) for item in _list(raw)]


def _fill(raw: Any) -> Fill:
    return Fill(
        trade_id=str(raw["trade_id"]),
        order_id=str(raw["order_id"]),
        instrument_name=str(raw["instrument_name"]),
        direction=cast("Direction", _one_of(raw["direction"], _DIRECTIONS, "direction")),
        amount=_float(raw["amount"]),
        price=_float(raw["price"]),
        fee=_float(raw.get("fee", 0.0)),
        timestamp_ms=_as_int(raw["timestamp"]),
    )
