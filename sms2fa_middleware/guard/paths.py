"""Which paths are protected: the path a request's router will see, and segment-aware patterns.

Security stakes: the middleware's one promise is "these routes need a verified second
factor". It holds only if the middleware decides on the path **as the app's router will
route it**. Servers and routers disagree about spellings: werkzeug strips leading slashes
and merges repeated ones, servers percent-decode ``%2F`` into ``/``, WSGI hands PATH_INFO over
as latin-1 text of UTF-8 bytes, Starlette routes ``scope["path"]`` minus ``root_path``. So:

* :func:`wsgi_route_path` / :func:`asgi_route_path` turn a request into the mount-relative,
  UTF-8 text path its app routes (invalid UTF-8 survives as surrogate escapes);
* :func:`readings` turns a path into every canonical form a common router could give it --
  repeated slashes merged, dot segments resolved, and, where the spelling is ambiguous
  (``%`` left after the server decoded once, ``\\``, ``;`` parameters, control characters,
  invalid UTF-8, an absolute-form target), each plausible reading;
* :class:`PathPatterns` matches canonical paths against ``protect`` / ``exclude`` patterns
  on whole segments, in time linear in the path (globs: :mod:`.globs`);
* :class:`PathPolicy` also reads a path minus the root path an inner app sets for itself
  (:func:`app_root_paths`: FastAPI routes ``scope["path"]`` minus its own ``root_path``,
  written after an outer wrapper decided), and protects unread a path past the cost cap.

A request is protected when **any** of its readings is protected (fail closed). A path that
is plain -- printable ASCII with none of ``//``, ``/.``, ``%``, ``\\``, ``;`` -- has exactly
one reading, itself, which the hot path exploits.
"""

from __future__ import annotations

import logging
import re
import string
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from .globs import Glob, SegmentGlob
from .rules import PLAIN, Demand, Need, Rule, summary

log = logging.getLogger("sms2fa")

_SURROGATE = re.compile("[\udc80-\udcff]")
_CONTROL = re.compile("[\x00-\x1f\x7f]")
_PARAMS = re.compile(";[^/]*")
_GLOB_CHARS = frozenset("*?[")


def wsgi_route_path(path_info: str) -> str:
    """PATH_INFO as text the app routes: PEP 3333 gives latin-1 text of the raw bytes, so
    re-read them as UTF-8 (invalid bytes kept as surrogate escapes for :func:`readings`).
    PATH_INFO already excludes SCRIPT_NAME, so it is mount-relative."""
    if path_info.isascii():
        return path_info
    return path_info.encode("latin-1").decode("utf-8", "surrogateescape")


def asgi_route_path(scope: Mapping[str, Any]) -> str:
    """``scope["path"]`` minus ``scope["root_path"]``, exactly as Starlette routes it
    (``starlette._utils.get_route_path``): stripped only when the path starts with the root
    path followed by ``/`` (or equals it)."""
    return strip_root(scope["path"], scope.get("root_path", ""))


def is_plain(path: str) -> bool:
    """Whether ``path`` has exactly one reading, itself (minus a trailing slash)."""
    return (
        path.startswith("/")
        and path.isascii()
        and path.isprintable()
        and "//" not in path
        and "/." not in path
        and "%" not in path
        and "\\" not in path
        and ";" not in path
    )


def normalize(path: str) -> str:
    """Repeated slashes merged, ``.`` and ``..`` resolved, no trailing slash (``/`` stays)."""
    out: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if out:
                out.pop()
        else:
            out.append(segment)
    return "/" + "/".join(out)


def readings(path: str) -> set[str]:
    """Every canonical path a common router could route ``path`` to (see the module doc)."""
    if is_plain(path):
        return {normalize(path)}
    texts = {path}
    if _SURROGATE.search(path):  # invalid UTF-8: werkzeug/Starlette read U+FFFD; others latin-1
        raw = path.encode("utf-8", "surrogateescape")
        texts = {raw.decode("utf-8", "replace"), raw.decode("latin-1")}
    if not path.startswith("/") and "://" in path:  # an absolute-form target left whole
        texts |= {urlsplit(t).path for t in texts}
    for _ in range(3):  # "%" left after the server decoded: a second decoding, and a third
        more = {unquote(t) for t in texts if "%" in t} - texts
        if not more:
            break
        texts |= more
    texts |= {t.replace("\\", "/") for t in texts if "\\" in t}
    texts |= {_PARAMS.sub("", t) for t in texts if ";" in t}
    for text in [t for t in texts if _CONTROL.search(t)]:
        texts.add(_CONTROL.sub("", text))
        texts.add(text.split("\x00", 1)[0])  # C strings end at NUL
    return {normalize(t) for t in texts}


class PathPatterns:
    """``protect`` or ``exclude`` patterns, matched against canonical paths on whole segments.

    A plain pattern is a prefix of segments (``"/admin"`` and ``"/admin/"`` both match
    ``/admin`` and everything below it, not ``/administrator``); a pattern with ``*``, ``?``
    or ``[`` is a glob (:class:`~.globs.Glob`, matched in time linear in the path).
    """

    def __init__(self, patterns: Iterable[str]) -> None:
        if isinstance(patterns, str):
            patterns = [patterns]
        self.patterns = tuple(patterns)
        exact: list[str] = []
        globs: list[Glob] = []
        for pattern in self.patterns:
            if not isinstance(pattern, str) or not pattern.startswith("/"):
                raise ValueError(f"path patterns must start with '/': {pattern!r}")
            if "%" in pattern:  # it would silently protect nothing: paths are matched decoded
                raise ValueError(
                    f"write path patterns decoded ('/café', not '/caf%C3%A9'): {pattern!r}"
                )
            canonical = normalize(pattern)
            if _GLOB_CHARS.intersection(canonical):
                globs.append(Glob(canonical))
            else:
                exact.append(canonical.rstrip("/"))  # "/" -> "": everything
        self._exact = frozenset(p or "/" for p in exact)
        self._under = tuple(p + "/" for p in exact)
        self._globs = tuple(globs)
        #: The literal text every path a pattern matches starts with (up to its first
        #: wildcard): a plain path that starts with none of these cannot match.
        self.literals = tuple(_literal(normalize(p)) for p in self.patterns)

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def match(self, canonical: str) -> bool:
        """Whether a canonical path (:func:`normalize`) is matched by any pattern."""
        if canonical in self._exact or canonical.startswith(self._under):
            return True
        if not self._globs:
            return False
        segments = canonical[1:].split("/")
        return any(glob.match(segments) for glob in self._globs)


def _literal(canonical: str) -> str:
    cut = min((canonical.index(c) for c in _GLOB_CHARS if c in canonical), default=len(canonical))
    return canonical[:cut]


def pattern_base(pattern: str) -> str:
    """The literal segments before a pattern's first wildcard (``/admin/*`` -> ``/admin``)."""
    base: list[str] = []
    for segment in pattern.strip("/").split("/"):
        if _GLOB_CHARS.intersection(segment):
            break
        if segment:
            base.append(segment)
    return "/" + "/".join(base)


def route_warnings(
    routes: Iterable[str],
    protect: Iterable[str],
    exclude: Iterable[str] = (),
    public: Iterable[str] = (),
) -> list[str]:
    """Warnings about routes the patterns may leave open, for a start-up check.

    ``routes`` are sample paths, one per route, with every variable part filled in with
    ``x``. A route **may be left open** by a protect pattern when it is not protected but
    is one step from a path the pattern protects (a *near miss*):

    * it lacks only the trailing segments the glob requires -- the pattern's last segments
      made of ``*`` and ``?`` alone: ``/admin`` for ``/admin/*``, ``/api/x/admin`` for
      ``/api/*/admin/*``;
    * or, where a segment of the pattern starts with literal text before its first wildcard
      (``secret-*.pdf``, ``v[12]``), its segment there starts with that text and, filled in
      as the glob wants, the route would be protected: ``/files/secret-notes`` for
      ``/files/secret-*.pdf``, ``/v3/x`` for ``/v[12]/x``.

    The home page ``/`` is never a near miss (``/*`` leaves it open on purpose, and a
    ``public`` pattern ``/`` would cover every route).
    Nothing else is: a plain pattern (``/admin``) covers everything below it, and a route
    beside a glob's match (``/catalog/books`` beside ``/catalog/*/create``) is no reading of
    it. A route matched by ``exclude`` or ``public`` (routes deliberately open; ``public``
    changes nothing the middleware does) is not warned about. Also warned about: a protect
    pattern or rule that protects no route (a typo, or a route that moved).
    """
    entries = [protect] if isinstance(protect, str) else list(protect)
    # A rule (methods, max_age) is checked by its path: routes under it are covered (its
    # methods: :func:`~.rule_checks.method_warnings`).
    rules = [None if isinstance(p, str) else Rule.parse(p) for p in entries]
    protect = [p if rule is None else rule.path for p, rule in zip(entries, rules, strict=True)]
    protected, excluded = PathPatterns(protect), PathPatterns(exclude)
    declared = PathPatterns(_listed(public))
    samples = {route: normalize(route) for route in routes}
    warnings: list[str] = []
    for pattern, rule in zip(protect, rules, strict=True):
        one = PathPatterns([pattern])
        hits = 0
        for route, path in samples.items():
            if excluded.match(path):
                continue  # deliberately open: exclude wins
            if one.match(path):
                hits += 1  # protected, whatever public says (it changes no decision)
            elif not protected.match(path) and not declared.match(path):
                near = near_miss(pattern, path)
                if near is not None:
                    warnings.append(
                        f"route {route!r} is not protected, though protect has {pattern!r}, "
                        f"which protects {near!r}; protect it too, or declare it public"
                    )
        if not hits:
            entry = f"pattern {pattern!r}" if rule is None else f"rule ({summary(rule)})"
            warnings.append(f"protect {entry} matches no route")
    return warnings


def _listed(patterns: Iterable[str]) -> list[str]:
    return [patterns] if isinstance(patterns, str) else list(patterns)


_FILL_CANDIDATES = "x" + string.ascii_letters + string.digits + "-_.~"


def _segment_sample(segment: str) -> str | None:
    """A path segment that the segment glob ``segment`` matches, or None if none is found:
    literal text kept, ``*`` as ``x``, ``?`` and each ``[...]`` as a character it accepts."""
    out: list[str] = []
    i = 0
    while i < len(segment):
        c = segment[i]
        if c in "*?":
            out.append("x")
        elif c == "[" and "]" in segment[i + 2 :]:
            end = segment.index("]", i + 2)
            cls = SegmentGlob(segment[i : end + 1])
            out.append(next((k for k in _FILL_CANDIDATES if cls.match(k)), "x"))
            i = end
        else:
            out.append(c)
        i += 1
    text = "".join(out)
    return text if SegmentGlob(segment).match(text) else None


def near_miss(pattern: str, path: str) -> str | None:
    """A path ``pattern`` protects that a canonical ``path`` it does not protect is one
    step from (see :func:`route_warnings`), or None."""
    canonical = normalize(pattern)
    if path == "/" or not _GLOB_CHARS.intersection(canonical):
        return None  # the home page: "public" cannot name it alone (it covers everything)
    glob, parts = Glob(canonical), canonical[1:].split("/")
    segments = path[1:].split("/")
    tail: list[str] = []  # the trailing segments the glob requires
    for part in reversed(parts):
        if not part or set(part) - {"*", "?"}:
            break
        if part != "**":
            tail.insert(0, "x" * max(1, part.count("?")))
    if tail and glob.match(segments + tail):
        return "/" + "/".join(segments + tail)
    for i, part in enumerate(parts):
        if part == "**":
            break  # past a "**" the segments do not line up
        head = _literal(part)
        if head == part or not head or i >= len(segments):
            continue
        if segments[i].startswith(head):
            filled = _segment_sample(part)
            if filled is not None:
                candidate = [*segments[:i], filled, *segments[i + 1 :]]
                if glob.match(candidate):
                    return "/" + "/".join(candidate)
    return None


#: RULED: a rule that says more than its path matches it; the method decides
#: (:meth:`PathPolicy.demand`).
PASS, PROTECTED, PREFIX, RULED = 0, 1, 2, 3
KIND_CACHE_SIZE = 4096  # paths whose classification is remembered per process
KIND_CACHE_KEY_MAX = 256  # longer paths are classified every time
#: A path longer than this, or with more segments, is PROTECTED without being read (fail
#: closed): what one request can cost the worker stays bounded whatever the server accepts.
MAX_PATH_CHARS = 16_384
MAX_PATH_SEGMENTS = 256


def _separators(path: str) -> int:
    """How many segment separators a reading of ``path`` may have: ``/``, ``\\`` and each
    ``%`` (a ``%2F`` left after the server decoded)."""
    return path.count("/") + path.count("\\") + path.count("%")


def strip_root(path: str, root: str) -> str:
    """``path`` minus ``root`` as Starlette routes it (``get_route_path``): stripped only
    when the path is the root or continues it with ``/``; otherwise ``path`` unchanged."""
    if not root or not path.startswith(root):
        return path
    if len(path) == len(root):
        return "/"
    return path[len(root) :] if path[len(root)] == "/" else path


def app_root_paths(app: object, depth: int = 32) -> tuple[str, ...]:
    """The root paths an ASGI app sets for itself (FastAPI's ``root_path``), on ``app`` and
    the apps it wraps (``.app``, as middleware holds them): Starlette then routes
    ``scope["path"]`` minus that root, after a wrapper outside it has classified the path."""
    found: list[str] = []
    seen: set[int] = set()
    while app is not None and id(app) not in seen and len(seen) < depth:
        seen.add(id(app))
        try:  # any object may stand here; a property that raises ends the walk
            root, inner = getattr(app, "root_path", None), getattr(app, "app", None)
        except Exception:
            break
        if isinstance(root, str) and root.startswith("/") and root not in found:
            found.append(root)
        app = inner
    return tuple(found)


class PathPolicy:
    """Which mount-relative paths are PASS, PROTECTED or under the PREFIX, remembered.

    The adapters' hot path is one lookup in :attr:`kinds`; :meth:`remember` fills it.
    """

    def __init__(
        self,
        protect: Iterable[str],
        exclude: Iterable[str],
        prefix: str,
        rules: Iterable[Rule] = (),
    ) -> None:
        self.prefix = prefix
        self._prefix_slash = prefix + "/"
        self._protect = PathPatterns(protect)
        self._exclude = PathPatterns(exclude)
        #: Rules that say more than their path (:mod:`.rules`), each with its pattern.
        self._rules = tuple((rule, PathPatterns([rule.path])) for rule in rules)
        #: A plain path (see :func:`is_plain`) that starts with none of these passes through.
        self.watched: tuple[str, ...] = (
            prefix,
            *self._protect.literals,
            *(p.literals[0] for _, p in self._rules),
        )
        #: Root paths an inner app strips before routing (:meth:`add_root_paths`).
        self.roots: tuple[str, ...] = ()
        #: What :meth:`classify` said about paths seen before (the key is the path the
        #: adapter got). Bounded: cleared when full.
        self.kinds: dict[str, int] = {}
        #: For paths classified RULED: what their rules ask, by method (:meth:`demand`).
        self.demands: dict[str, Demand] = {}

    def add_root_paths(self, roots: Iterable[str]) -> None:
        """Also read every path as an inner app that strips one of ``roots`` routes it
        (:func:`app_root_paths`). Only ever adds readings, so a Guard shared by several
        apps stays fail-closed for each; what was remembered is forgotten."""
        more = [r for r in roots if r and r not in self.roots]
        for root in list(more):
            trimmed = normalize(root)  # "/api/" or "//api" reach the same routes
            if trimmed != "/" and trimmed not in self.roots and trimmed not in more:
                more.append(trimmed)
        if more:
            self.roots = (*self.roots, *more)
            self.kinds.clear()
            self.demands.clear()

    def classify(self, path: str) -> int:
        """PASS, PROTECTED, PREFIX or RULED for a mount-relative, decoded path
        (``*_route_path``). PROTECTED when any reading of the path is protected, with or
        without an inner app's root path, or when the path is too long to read (fail
        closed); RULED when a rule that says more than its path matches a reading (then
        :meth:`demand` says what it asks of each method)."""
        return self._classify(path)[0]

    def _classify(self, path: str) -> tuple[int, Demand | None]:
        if path.startswith(self._prefix_slash) or path == self.prefix:
            return PREFIX, None
        if len(path) > MAX_PATH_CHARS or _separators(path) > MAX_PATH_SEGMENTS:
            if self._rules:  # unread: every rule's demand applies (fail closed)
                return RULED, Demand(True, tuple(rule for rule, _ in self._rules))
            return PROTECTED, None
        texts = {path, *(strip_root(path, root) for root in self.roots)}
        canonical: set[str] = set()
        for text in texts:
            canonical |= self._readings(text)
        if not canonical:
            return PASS, None
        protected = any(self.protects(c) for c in canonical)
        matched = tuple(
            rule
            for rule, pattern in self._rules
            if any(pattern.match(c) and not self._exclude.match(c) for c in canonical)
        )
        if matched:
            return RULED, Demand(protected, matched)
        return (PROTECTED if protected else PASS), None

    def _readings(self, path: str) -> set[str]:
        """The canonical readings of ``path`` worth matching (none for a plain path that
        starts with no pattern's literal text)."""
        if is_plain(path):  # its one reading is itself, so classify() stripped the roots
            return {normalize(path)} if path.startswith(self.watched) else set()
        canonical = readings(path)
        for root in self.roots:  # a reading the server or router resolved, then stripped
            canonical |= {strip_root(c, root) for c in canonical}
        return canonical

    def protects(self, canonical: str) -> bool:
        """Whether a canonical path is protected for every method: some plain protect
        pattern matches it and no exclude pattern does (exclude wins)."""
        return self._protect.match(canonical) and not self._exclude.match(canonical)

    def remember(self, key: str, path: str) -> int:
        """:meth:`classify` ``path``, remembered in :attr:`kinds` under ``key`` (and its
        :class:`Demand` in :attr:`demands` when RULED)."""
        kind, demand = self._classify(path)
        if len(key) <= KIND_CACHE_KEY_MAX:
            if len(self.kinds) >= KIND_CACHE_SIZE:
                self.kinds.clear()  # a flood of distinct paths: start over, stay bounded
                self.demands.clear()
            if demand is not None:
                self.demands[key] = demand  # before the kind: a reader of RULED finds it
            self.kinds[key] = kind
        return kind

    def demand(self, key: str, path: str, method: str) -> tuple[int, Need]:
        """For a RULED request: (PROTECTED or PASS, the :class:`~.rules.Need` of ``method``).
        PROTECTED too when only rules with a ``when`` cover the method: the guard asks them
        (:meth:`~.rules.Need.resolve`). ``key`` and ``path`` as for :meth:`remember`."""
        demand = self.demands.get(key)
        if demand is None:
            kind, demand = self._classify(path)
            if demand is None:  # the cache was cleared and the rules moved: as classified
                return (PROTECTED if kind == PROTECTED else PASS), PLAIN
        need = demand.for_method(method)
        return (PROTECTED if need.protected or need.pending else PASS), need


__all__ = [
    "MAX_PATH_CHARS",
    "MAX_PATH_SEGMENTS",
    "PASS",
    "PREFIX",
    "PROTECTED",
    "RULED",
    "PathPatterns",
    "PathPolicy",
    "app_root_paths",
    "asgi_route_path",
    "is_plain",
    "near_miss",
    "normalize",
    "pattern_base",
    "readings",
    "route_warnings",
    "strip_root",
    "wsgi_route_path",
]
