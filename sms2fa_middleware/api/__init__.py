"""The HTTP API's front end: the API itself and what serves and calls it.

- :mod:`.verification` -- :class:`VerificationAPI`, sans-IO (the middleware mounts it under
  its prefix; the service serves it); :mod:`.failed_auth` its wrong-token budget.
- :mod:`.openapi` -- its OpenAPI 3.1 document.
- :mod:`.service` -- the standalone ASGI service ``sms2fa serve`` runs;
  :mod:`.serve_protocol` -- the uvicorn protocol it runs under (header deadline, connection
  bound).
- :mod:`.client` -- :class:`~.client.SMSAuthClient`, a client for the API.

Only :class:`VerificationAPI` is imported here: the service needs Starlette, the protocol
uvicorn, the client requests -- each is imported from its own module.
"""

from __future__ import annotations

from .verification import VerificationAPI

__all__ = ["VerificationAPI"]
