"""Send text messages through Flowroute's Messaging API v2.1.

The one rule this sender keeps above all: it never risks sending the same code twice. It
retries only where the request provably did not reach Flowroute (the connection was refused
or never opened) or where Flowroute said it did not take the message (429 and 503). A read
timeout or a connection dropped after the request went out is ambiguous -- the SMS may be on
its way -- so it fails at once with :class:`SendError` and lets the caller decide.

Nothing here logs or raises the secret key, the message body or a full phone number.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import time
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from http.cookiejar import DefaultCookiePolicy
from types import TracebackType
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.auth import HTTPBasicAuth
from requests.utils import default_user_agent
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError

from ..phones import mask, provider_digits
from ..settings import DEFAULT_FLOWROUTE_URL
from .base import SendError

log = logging.getLogger("sms2fa")

_MEDIA_TYPE = "application/vnd.api+json"
_RETRYABLE_STATUS = frozenset({429, 503})
_DIGITS = re.compile(r"[0-9]{8,15}")
# A provider error title is short, fixed text; anything that looks like a phone number in it
# is blotted out anyway, so the title is safe to log and to raise.
_LONG_DIGIT_RUN = re.compile(r"[0-9]{7,}")


class FlowrouteSender:
    """Deliver one message per :meth:`send` through ``POST {base_url}/messages``.

    One instance may be shared by every thread of a process: each call passes its own auth,
    headers and timeouts, the session refuses cookies (the API is stateless), and urllib3's
    connection pool is thread-safe. A ``session`` you pass in is used as it is and not closed.
    """

    def __init__(
        self,
        *,
        access_key: str,
        secret_key: str,
        from_number: str,
        base_url: str = DEFAULT_FLOWROUTE_URL,
        timeout: float = 10.0,
        max_retries: int = 2,
        session: requests.Session | None = None,
        max_retry_wait: float = 2.0,
    ) -> None:
        """``timeout`` is the read timeout in seconds (connecting gets at most 3.05 s of it);
        ``max_retries`` bounds the extra attempts and ``max_retry_wait`` the total back-off."""
        if not access_key or not secret_key:
            raise ValueError("Flowroute access key and secret key are required")
        sender_digits = provider_digits(from_number)
        if not _DIGITS.fullmatch(sender_digits):
            raise ValueError("from_number must be digits only, e.g. '12065550100'")
        if not (timeout > 0 and math.isfinite(timeout)):
            raise ValueError("timeout must be a positive number of seconds")
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        if not (max_retry_wait >= 0 and math.isfinite(max_retry_wait)):
            raise ValueError("max_retry_wait must be 0 or more seconds")
        self._auth = HTTPBasicAuth(access_key, secret_key)
        self._from = sender_digits
        self._url = base_url.rstrip("/") + "/messages"
        self._host = urlsplit(base_url).hostname or base_url
        self._timeouts = (min(3.05, timeout), timeout)
        self._max_retries = max_retries
        self._max_retry_wait = max_retry_wait
        self._owns_session = session is None
        self._session = session if session is not None else _new_session()
        self._headers = {
            "Content-Type": f"{_MEDIA_TYPE}; charset=utf-8",
            "Accept": _MEDIA_TYPE,
            "User-Agent": f"sms2fa-middleware {default_user_agent()}",
        }

    def __repr__(self) -> str:
        return f"FlowrouteSender(url={self._url!r})"

    def __enter__(self) -> FlowrouteSender:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release pooled connections (only of a session this sender made)."""
        if self._owns_session:
            self._session.close()

    def send(self, to: str, body: str) -> str:
        """Send ``body`` to ``to`` (E.164); return Flowroute's ``mdr2-...`` id or raise SendError.

        Should a 2xx answer carry no id, the message was still taken: the answer is ``""``.
        """
        who = mask(to)
        payload = self._payload(to, body, who)
        attempts = self._max_retries + 1
        waited = 0.0
        for attempt in range(1, attempts + 1):
            result = self._attempt(payload, who, attempt)
            if isinstance(result, str):
                return result
            reason, wait, status = result
            if attempt == attempts:
                raise SendError(f"{reason}; gave up after {attempts} attempts", status=status)
            if waited + wait > self._max_retry_wait:
                # Waiting longer than the caller can afford helps nobody: say so now.
                raise SendError(
                    f"{reason}; retry would need {wait:.1f}s more, gave up", status=status
                )
            log.warning(
                "sms2fa: %s (message to %s); retrying in %.2fs, attempt %d of %d",
                reason,
                who,
                wait,
                attempt + 1,
                attempts,
            )
            time.sleep(wait)
            waited += wait
        raise AssertionError("unreachable")  # pragma: no cover

    def _payload(self, to: str, body: str, who: str) -> bytes:
        """The JSON:API document for one message (digits only, as Flowroute wants them)."""
        digits = provider_digits(to)
        if not _DIGITS.fullmatch(digits):
            raise SendError(f"recipient {who} is not a phone number")
        if not body:
            raise SendError("refusing to send an empty message")
        return json.dumps(
            {
                "data": {
                    "type": "message",
                    "attributes": {"to": digits, "from": self._from, "body": body},
                }
            },
            ensure_ascii=False,
        ).encode("utf-8")

    def _attempt(self, payload: bytes, who: str, attempt: int) -> str | _Retry:
        """Post once: the message id, or why to retry and after how long. Raises SendError
        when retrying could send the code twice or cannot help."""
        try:
            response = self._session.post(
                self._url,
                data=payload,
                headers=self._headers,
                auth=self._auth,
                timeout=self._timeouts,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            if not _never_sent(exc):
                raise _not_retried(exc, who, self._timeouts[1]) from exc
            reason = f"could not connect to Flowroute at {self._host}"
            return _Retry(reason, _backoff(attempt, base=0.1), None)
        with response:
            outcome = _outcome(response, who)
        if isinstance(outcome, str):
            log.debug("sms2fa: message to %s taken by Flowroute: %s", who, outcome)
            return outcome
        if response.status_code not in _RETRYABLE_STATUS:
            raise outcome
        hinted = _retry_after(response.headers.get("Retry-After"))
        wait = hinted if hinted is not None else _backoff(attempt, base=0.25)
        return _Retry(outcome.args[0], wait, response.status_code)


class _Retry(NamedTuple):
    """A failed attempt that may be retried: why, after how many seconds, the HTTP status."""

    reason: str
    wait: float
    status: int | None


def _outcome(response: requests.Response, who: str) -> str | SendError:
    """The message id of a success, or the error that describes a failure."""
    status = response.status_code
    if 200 <= status < 300:
        message_id = _message_id(response)
        if message_id is None:
            log.warning(
                "sms2fa: Flowroute took the message to %s (HTTP %d) but sent no id", who, status
            )
            return ""
        return message_id
    title = _error_title(response)
    if status in (401, 403):
        log.error(
            "sms2fa: Flowroute refused our credentials (HTTP %d %s): check "
            "FLOWROUTE_ACCESS_KEY and FLOWROUTE_SECRET_KEY%s",
            status,
            title,
            ", and that FLOWROUTE_NUMBER belongs to the account" if status == 403 else "",
        )
        return SendError(
            f"Flowroute refused the credentials (HTTP {status} {title}); "
            "the SMS settings are misconfigured",
            status=status,
        )
    if 300 <= status < 400:
        return SendError(
            f"Flowroute answered a redirect (HTTP {status}); check the API URL", status=status
        )
    return SendError(
        f"Flowroute did not take the message to {who} (HTTP {status} {title})", status=status
    )


def _new_session() -> requests.Session:
    session = requests.Session()
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    # Enough pooled connections that concurrent sends from a worker's threads are reused
    # instead of being opened and discarded (with a warning) one by one.
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=32)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _never_sent(exc: requests.RequestException) -> bool:
    """True when the request cannot have reached the server (no connection was made)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if not isinstance(exc, requests.ConnectionError):
        return False
    if isinstance(exc, requests.exceptions.SSLError):
        return False  # a failed handshake is a configuration problem, not a blip
    cause = exc.args[0] if exc.args else None
    # requests wraps a failed connect (refused, unreachable, DNS) as MaxRetryError whose
    # reason is NewConnectionError, a ConnectTimeoutError; a drop after sending is a bare
    # ProtocolError instead.
    return isinstance(cause, MaxRetryError) and isinstance(cause.reason, ConnectTimeoutError)


def _not_retried(exc: requests.RequestException, who: str, read_timeout: float) -> SendError:
    if isinstance(exc, ValueError):  # InvalidURL, MissingSchema, ...: nothing was sent
        return SendError(f"the Flowroute API URL is not valid ({type(exc).__name__})")
    if isinstance(exc, requests.Timeout):
        what = f"no answer from Flowroute within {read_timeout:g}s"
    elif isinstance(exc, requests.ConnectionError):
        what = "the connection to Flowroute broke before it answered"
    else:
        what = f"the request to Flowroute failed ({type(exc).__name__})"
    return SendError(f"{what}; the message to {who} may have been sent, so it was not retried")


def _backoff(attempt: int, *, base: float) -> float:
    """Exponential back-off with jitter, so that many workers do not retry in step."""
    return float(base * 2 ** (attempt - 1) * random.uniform(0.5, 1.0))


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or HTTP date), or None."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - time.time()
    if math.isnan(seconds):
        return None
    return max(0.0, seconds)


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _message_id(response: requests.Response) -> str | None:
    document = _json(response)
    if isinstance(document, dict):
        data = document.get("data")
        if isinstance(data, dict) and isinstance(data.get("id"), str) and data["id"]:
            return str(data["id"])
    return None


def _error_title(response: requests.Response) -> str:
    """The first error's ``title`` (never its ``detail``, which may echo the request)."""
    document = _json(response)
    title: object = None
    if isinstance(document, dict):
        errors = document.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            title = errors[0].get("title")
    if not isinstance(title, str) or not title.strip():
        try:
            return HTTPStatus(response.status_code).phrase
        except ValueError:
            return "Error"
    return _LONG_DIGIT_RUN.sub("…", " ".join(title.split()))[:100]
