"""A client for the verification HTTP API, compatible with the original ``SMSAuthClient``."""

from __future__ import annotations

from typing import Any

import requests


class SMSAuthError(requests.HTTPError):
    """A non-2xx answer, with the server's ``reason``, ``message`` and ``attempts_left``."""

    def __init__(self, response: requests.Response) -> None:
        try:
            body = response.json()
        except ValueError:
            body = None
        data: dict[str, Any] = body if isinstance(body, dict) else {}
        self.status_code = response.status_code
        self.reason: str | None = data.get("reason")
        self.message: str = data.get("message") or f"HTTP {response.status_code}"
        self.attempts_left: int | None = data.get("attempts_left")
        self.retry_after: int | None = data.get("retry_after")
        super().__init__(f"{response.status_code} {self.reason}: {self.message}", response=response)


class SMSAuthClient:
    """``create_auth`` sends a code; ``authenticate_code`` checks one. Both return the JSON.

    ``endpoint`` is where the API is mounted, with or without a scheme
    (``"localhost:8000"``, ``"https://example.com/sms2fa"``). Codes are checked with
    ``POST {endpoint}/check`` so they never appear in a URL or an access log.

    With a ``token`` the endpoint must be ``https://``: the token and the codes would
    otherwise cross the network in clear. ``allow_http=True`` permits plain http, for a
    service on loopback (``SMSAuthClient("127.0.0.1:8000", token, allow_http=True)``).
    """

    def __init__(
        self,
        endpoint: str,
        token: str | None = None,
        *,
        timeout: float = 15.0,
        session: requests.Session | None = None,
        allow_http: bool = False,
    ) -> None:
        if "://" not in endpoint:
            endpoint = "http://" + endpoint
        scheme = endpoint.partition("://")[0].lower()
        if token is not None and scheme != "https" and not allow_http:
            raise ValueError(
                f"SMSAuthClient sends its token only over https://, not {scheme}:// "
                f"({endpoint.partition('://')[2].split('/')[0]}): use an https:// endpoint, "
                "or pass allow_http=True for a service on loopback"
            )
        self.endpoint = endpoint.rstrip("/") + "/"
        self.timeout = timeout
        self.session = session or requests.Session()
        if token is not None:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def create_auth(self, auth_id: str, recipient: str, **options: Any) -> dict[str, Any]:
        """Create a code for ``auth_id`` and send it to ``recipient``.

        Options: ``code_length``, ``expiration`` (seconds), ``retries``, ``message``.
        """
        payload = {"auth_id": auth_id, "recipient": recipient, **options}
        return self._answer(self.session.post(self.endpoint, json=payload, timeout=self.timeout))

    def authenticate_code(self, auth_id: str, code: str) -> dict[str, Any]:
        """Check ``code``; raises :class:`SMSAuthError` unless it is right."""
        payload = {"auth_id": auth_id, "code": str(code)}
        return self._answer(
            self.session.post(self.endpoint + "check", json=payload, timeout=self.timeout)
        )

    @staticmethod
    def _answer(response: requests.Response) -> dict[str, Any]:
        if not response.ok:
            raise SMSAuthError(response)
        result: dict[str, Any] = response.json()
        return result
