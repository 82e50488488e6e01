"""The middleware's policy, framework-neutral (sans-IO): which paths need a verified session,
the verified-session cookie, the challenge flow, and the mounted API.

The WSGI and ASGI adapters only translate requests and call :class:`Guard`; they hold no
policy. One module per job:

* :mod:`.options` -- :class:`GuardOptions`, every option, validated once;
* :mod:`.paths` -- the path a router will see, segment-aware patterns, PASS/PROTECTED/PREFIX/RULED;
* :mod:`.rules` -- ``protect`` rules: methods, ``max_age`` (step-up), ``idle``, ``when``;
* :mod:`.cookies` -- cookie names (``__Host-``), attributes (Secure, Domain, SameSite);
* :mod:`.sessions` -- the signed verified-session cookie, its cache, revocations;
* :mod:`.csrf` -- the challenge forms' Origin check and tokens;
* :mod:`.origins` -- which origins a challenge post may come from;
* :mod:`.identity` -- what ``identify`` returned, normalised;
* :mod:`.refusals` -- not logged in, no phone, verification required;
* :mod:`.sending` -- sending a code for the flows (once per waiting code; why not);
* :mod:`.flows.html` -- the challenge page and its forms; :mod:`.flows.json` -- for API clients;
* :mod:`.rendering` -- every page made one way: the app's ``render`` hook or the built-in page
  (:mod:`.flows.pages`), with the middleware's headers, nonce and script;
* :mod:`.routes` -- the guard's routes under the prefix (challenge, OpenAPI, the API);
* :mod:`.responses`, :mod:`.private` -- small answers and URLs; private response headers;
* :mod:`.core` -- :class:`Guard`, the facade; :mod:`.app` -- what both adapters share.

Security stakes (see docs/security.md): the cookie is bound to the auth_id and the
phone number, so it is worthless for another user or after a number change; a fresh random
session identifier is minted on every success (no fixation); ``next`` only ever leads to a
same-origin relative path; the challenge form carries a CSRF token bound to the user and to a
cookie, and a check that consumes an attempt is never triggered by a GET.
"""

from __future__ import annotations

from .app import GuardedApp
from .cookies import cookie_value
from .core import Guard
from .identity import IdentifyError
from .options import DEFAULT_REMEMBER_FOR, GuardOptions
from .paths import PASS, PREFIX, PROTECTED, RULED
from .private import private_headers, private_raw_headers
from .responses import safe_next
from .rules import Rule
from .sessions import SessionSigner

__all__ = [
    "DEFAULT_REMEMBER_FOR",
    "PASS",
    "PREFIX",
    "PROTECTED",
    "RULED",
    "Guard",
    "GuardOptions",
    "GuardedApp",
    "IdentifyError",
    "Rule",
    "SessionSigner",
    "cookie_value",
    "private_headers",
    "private_raw_headers",
    "safe_next",
]
