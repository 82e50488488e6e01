"""The languages the middleware speaks: its shipped gettext catalogues (``locale/``), the
choice of one for a request (``Accept-Language``, unless the app names the user's), and
the page's ``lang``/``dir``.

The catalogues are compiled ``.mo`` files in the package, read with the standard library's
:mod:`gettext`; nothing needs Babel at run time. The choice is per request: the guard
speaks it with :func:`sms2fa_middleware.text.speaking` (a context variable), so two
concurrent requests in two languages never see each other's.
"""

from __future__ import annotations

import functools
import gettext
from pathlib import Path

#: The gettext domain of the catalogues (``locale/<lang>/LC_MESSAGES/sms2fa.mo``).
DOMAIN = "sms2fa"
LOCALE_DIR = Path(__file__).parent / "locale"
DEFAULT = "en"
#: Every language with a catalogue, and English (the message ids themselves).
SHIPPED = ("en", "es", "fr", "de", "pt_BR", "ar")
#: Right-to-left languages: their pages get ``dir="rtl"``.
RTL = frozenset({"ar"})
#: A primary tag alone (``pt``, ``pt-PT``) gets this shipped variant.
_BY_PRIMARY = {code.split("_")[0]: code for code in SHIPPED}


def shipped(tag: str | None) -> str | None:
    """The shipped language for a language tag (``es-MX`` -> ``es``, ``pt``/``pt-BR`` ->
    ``pt_BR``, ``AR`` -> ``ar``), or None when none fits (or no tag)."""
    if not tag or not isinstance(tag, str):
        return None
    parts = tag.strip().replace("_", "-").split("-")
    primary = parts[0].lower()
    if len(parts) > 1:
        exact = f"{primary}_{parts[1].upper()}"
        if exact in SHIPPED:
            return exact
    return _BY_PRIMARY.get(primary)


def negotiate(accept_language: str) -> str:
    """The shipped language an ``Accept-Language`` header prefers most (by q-value, then
    order); English when it names none of them, is empty or malformed."""
    if not accept_language:
        return DEFAULT
    # werkzeug's parser, imported here: the guard loads no web framework (an ASGI app that
    # never negotiates never imports werkzeug).
    from werkzeug.datastructures import LanguageAccept
    from werkzeug.http import parse_accept_header

    for value, quality in parse_accept_header(accept_language, LanguageAccept):
        if quality > 0 and (language := shipped(value)) is not None:
            return language
    return DEFAULT


def choose(override: str | None, accept_language: str) -> str:
    """The app's choice (the user's saved language) when it is a shipped one, else the
    header's."""
    return shipped(override) or negotiate(accept_language)


def html_tag(language: str) -> str:
    """The BCP 47 tag for ``lang=""`` (``pt_BR`` -> ``pt-BR``)."""
    return language.replace("_", "-")


def direction(language: str) -> str:
    """``"rtl"`` or ``"ltr"``, for ``dir=""``."""
    return "rtl" if language in RTL else "ltr"


@functools.lru_cache(maxsize=len(SHIPPED))
def translations(language: str) -> gettext.NullTranslations:
    """The compiled catalogue of a shipped language (read once per process); English: the
    message ids as they are."""
    if language == DEFAULT:
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, LOCALE_DIR, languages=[language])


__all__ = ["RTL", "SHIPPED", "choose", "direction", "negotiate", "shipped", "translations"]
