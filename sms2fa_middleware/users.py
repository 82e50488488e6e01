"""Reading an app's user object for ``identify``: its phone number by attribute path or by
a function. Shared by the framework helpers (Flask-Login, FastAPI)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: An attribute name, a dotted path through relations (``"profile.phone"``), or a function
#: of the user.
UserField = str | Callable[[Any], Any]


def reader(field: UserField) -> Callable[[Any], Any]:
    """A function reading ``field`` off a user: a dotted path stops at the first None."""
    if callable(field):
        return field
    if not isinstance(field, str) or not field:
        raise TypeError(
            'give an attribute name ("phone_number", "profile.phone") or a function of the user'
        )
    names = field.split(".")

    def read(user: Any) -> Any:
        value = user
        for name in names:
            value = getattr(value, name, None)
            if value is None:
                return None
        return value

    return read


def phone_text(value: Any) -> str | None:
    """A phone value as text for Identity: None or "" for none on file; a ``PhoneNumber``
    (phonenumber-field) read as E.164."""
    if value is None:
        return None
    value = getattr(value, "as_e164", value)
    return value if isinstance(value, str) else str(value)


__all__ = ["UserField", "phone_text", "reader"]
