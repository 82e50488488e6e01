"""``Identity``: who is asking, as ``identify`` tells the middleware."""

from __future__ import annotations

from typing import Any, NamedTuple


class Identity(NamedTuple):
    """Who is asking: the app's stable user id and the phone number to send codes to.

    ``identify`` may give any ``auth_id`` whose ``str()`` is stable (a str, an int primary
    key, a UUID, ...), a ``recipient`` in E.164 (``+12065550123``) or in a national format
    (``(206) 555-0123``, read in the ``default_region`` setting), or ``None`` when the user has
    no phone on file. The identity the app sees on a verified request has the ``auth_id`` as
    a str and the number in E.164.
    """

    auth_id: Any
    recipient: str | None


__all__ = ["Identity"]
