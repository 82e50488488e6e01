"""The challenge page's Content-Security-Policy: ours, one an app extends, or the app's own --
with what keeps the page safe always in it.

``page_csp`` (a middleware option) is None (ours), a mapping of directives to sources to
add (``{"style-src": "'self'", "img-src": ["'self'", "data:"]}``: a template of the app's
own may load its stylesheet, logo and fonts), or a whole policy string (``"default-src
'self'; img-src *"``), which replaces ours. Whatever it says, the page's policy keeps:

* scripts by nonce only: ``script-src`` (and ``script-src-elem``) hold this response's nonce
  and never ``'unsafe-inline'``; ``script-src-attr 'none'`` when the app names it;
* ``frame-ancestors 'none'`` (no framing: clickjacking) and ``form-action 'self'`` (the code
  goes nowhere else);
* ``base-uri 'none'`` unless the app's policy names ``base-uri`` itself.

With the ``render`` option (the app renders the pages with its own templates, which load its
own stylesheet, images and fonts), ours also allows them from the page's own origin:
``style-src 'self' 'unsafe-inline'``, ``img-src 'self' data:``, ``font-src 'self'``
(:data:`RENDERED`); a mapping adds to that, a policy string replaces it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

_NAME = re.compile(r"[a-z][a-z0-9-]*")
#: A source expression: printable ASCII without the policy's separators.
_SOURCE = re.compile(r"[!-+\--:<-~]+")
_NONCE = "'nonce-{nonce}'"

#: Ours: nothing but the page's inline style, its nonce'd script and its own forms.
DEFAULT: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("default-src", ("'none'",)),
    ("style-src", ("'unsafe-inline'",)),
    ("script-src", ()),
    ("form-action", ("'self'",)),
    ("frame-ancestors", ("'none'",)),
    ("base-uri", ("'none'",)),
)
#: Added to ours when the app renders the pages (``render``): its templates' stylesheet,
#: images and fonts from its own origin (``/static/style.css``).
RENDERED: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("style-src", ("'self'",)),
    ("img-src", ("'self'", "data:")),
    ("font-src", ("'self'",)),
)
#: Set whatever the app's policy says (a mapping that names them is a ValueError).
FORCED = {"form-action": ("'self'",), "frame-ancestors": ("'none'",)}
#: Hold the nonce and never 'unsafe-inline' (which the nonce would not override in an old
#: browser).
NONCED = ("script-src", "script-src-elem")

PageCspOption = str | Mapping[str, str | Iterable[str]] | None


def _sources(value: str | Iterable[str], what: str) -> tuple[str, ...]:
    items = value.split() if isinstance(value, str) else [str(v) for v in value]
    for item in items:
        if not _SOURCE.fullmatch(item):
            raise ValueError(f"page_csp: {item!r} in {what} is no CSP source expression")
    return tuple(items)


def _directive(name: object) -> str:
    text = str(name).strip().lower()
    if not _NAME.fullmatch(text):
        raise ValueError(f"page_csp: {name!r} is no CSP directive name")
    return text


def _parse_policy(policy: str) -> dict[str, tuple[str, ...]]:
    """A policy string's directives, in order; the first of a repeated one counts (as in
    browsers). A comma (a second policy) or a control character is a ValueError."""
    if "," in policy or not policy.isascii() or not policy.isprintable():
        raise ValueError(
            "page_csp: one policy of printable ASCII, directives separated by ';' "
            "(no ',' and no line breaks)"
        )
    directives: dict[str, tuple[str, ...]] = {}
    for part in policy.split(";"):
        tokens = part.split()
        if tokens:
            name = _directive(tokens[0])
            directives.setdefault(name, _sources(tokens[1:], name))
    if not directives:
        raise ValueError("page_csp: the policy is empty")
    return directives


@dataclass(frozen=True)
class PageCsp:
    """The policy with a ``{nonce}`` hole, made once at start-up; :meth:`header` fills it."""

    template: str

    @classmethod
    def from_option(cls, option: PageCspOption, rendered: bool = False) -> PageCsp:
        """The policy for ``page_csp``; ``rendered``: the app's templates make the pages
        (ours then allows the app's own styles, images and fonts: :data:`RENDERED`)."""
        directives = dict(DEFAULT)
        if rendered:
            for name, added in RENDERED:
                directives[name] = tuple(dict.fromkeys((*directives.get(name, ()), *added)))
        if isinstance(option, str):
            directives = _parse_policy(option)
            directives.setdefault("base-uri", ("'none'",))
        elif isinstance(option, Mapping):
            for key, value in option.items():
                name = _directive(key)
                if name in FORCED:
                    raise ValueError(
                        f"page_csp: {name} is always {' '.join(FORCED[name])} on this page"
                    )
                added = _sources(value, name)
                directives[name] = tuple(dict.fromkeys((*directives.get(name, ()), *added)))
        elif option is not None:
            raise ValueError("page_csp must be None, a policy string or a mapping of directives")
        return cls(_render(directives))

    def header(self, nonce: str) -> tuple[str, str]:
        """The header for a page whose script carries ``nonce``."""
        return ("content-security-policy", self.template.replace("{nonce}", nonce))


def _render(directives: dict[str, tuple[str, ...]]) -> str:
    """The policy text with the invariants applied (see the module docstring)."""
    directives.setdefault("script-src", ())
    directives.update(FORCED)
    if "script-src-attr" in directives:  # no inline event handlers, ever
        directives["script-src-attr"] = ("'none'",)
    for name in NONCED:
        if name in directives:
            kept = [s for s in directives[name] if s.lower() not in ("'unsafe-inline'", "'none'")]
            directives[name] = (_NONCE, *(s for s in kept if not s.startswith("'nonce-")))
    return "; ".join(" ".join((name, *sources)) for name, sources in directives.items())


#: Ours, for a guard built without the option.
DEFAULT_CSP = PageCsp.from_option(None)

__all__ = ["DEFAULT_CSP", "RENDERED", "PageCsp", "PageCspOption"]
