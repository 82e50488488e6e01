"""Start-up warnings about ``protect`` rules that name methods, against the methods the app's
routes answer: a route a rule protects for some of its methods while methods that change
something stay open (a ``methods=["POST"]`` rule on a route that also answers PUT and DELETE
leaves those open), and a rule whose routes answer none of its methods (it protects
nothing). A read left open beside protected writes is the usual intent (``{"path":
"/reports", "methods": ["POST"]}``: anyone reads, a verified user posts), not warned about.

Only routes whose framework says which methods they answer are checked (Flask's
``rule.methods``, Starlette's and FastAPI's ``route.methods``); Django views do not declare
theirs. HEAD and OPTIONS do not count: frameworks answer them for any GET route (HEAD runs
the GET view, which a rule covering GET covers too) and CORS preflights carry no session.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .paths import PathPatterns, normalize
from .rules import Rule, split_protect, summary

#: Methods a route answers that no rule needs to name (see the module doc).
IGNORED = frozenset(("HEAD", "OPTIONS"))
#: RFC 9110's safe methods: one left open beside a rule's covered methods is a read.
SAFE = frozenset(("GET", "HEAD", "OPTIONS", "TRACE"))


def _answered(methods: Iterable[str] | None) -> frozenset[str] | None:
    if methods is None:
        return None
    return frozenset(str(m).upper() for m in methods) - IGNORED


def _listed(patterns: Iterable[str]) -> list[str]:
    return [patterns] if isinstance(patterns, str) else list(patterns)


def method_warnings(
    routes: Mapping[str, Iterable[str] | None],
    protect: Iterable[str | Rule | Mapping[str, object]],
    exclude: Iterable[str] = (),
    public: Iterable[str] = (),
) -> list[str]:
    """Warnings about the methods ``protect``'s rules leave open or never meet.

    ``routes`` maps each route's sample path (variables as ``x``) to the methods it answers
    (None: the framework does not say; such a route is not checked). Warned about:

    * a route that a rule covers for some of its methods while others that are not safe
      (RFC 9110: not GET, HEAD, OPTIONS, TRACE) reach the app unverified -- unless a plain
      pattern protects it for every method, or ``public`` (routes deliberately open) or
      ``exclude`` matches it;
    * a rule with ``methods`` whose routes answer none of them (every route it matches
      says its methods): the rule protects nothing.

    A rule with a ``when`` counts as covering its methods (it decides per request on
    purpose). A rule that matches no route at all is :func:`~.paths.route_warnings`' to
    report.
    """
    entries = [protect] if isinstance(protect, str) else list(protect)
    patterns, rules = split_protect(entries)
    plain, excluded = PathPatterns(patterns), PathPatterns(exclude)
    declared = PathPatterns(_listed(public))
    ruled = [(rule, PathPatterns([rule.path])) for rule in rules]
    # Per rule: the routes it matches and the methods each answers (None: unknown).
    reached: dict[int, list[tuple[str, frozenset[str] | None]]] = {i: [] for i in range(len(ruled))}
    warnings: list[str] = []
    for route, methods in routes.items():
        path = normalize(route)
        if excluded.match(path):
            continue  # exclude wins over every rule: the route is deliberately open
        matching = [i for i, (_, pattern) in enumerate(ruled) if pattern.match(path)]
        if not matching:
            continue
        answered = _answered(methods)
        for i in matching:
            reached[i].append((route, answered))
        if not answered or plain.match(path) or declared.match(path):
            continue
        covering = [ruled[i][0] for i in matching]
        covered = {m for m in answered if any(rule.covers(m) for rule in covering)}
        left = answered - covered - SAFE
        if covered and left:
            names = "; ".join(summary(r) for r in covering if any(r.covers(m) for m in covered))
            many = len(left) > 1
            warnings.append(
                f"route {route!r} answers {_names(answered)}, but protect covers only "
                f"{_names(covered)} there ({names}): {_names(left)} "
                f"{'reach' if many else 'reaches'} the app unverified; add "
                f"{'them' if many else 'it'} to the rule's methods, or declare the route "
                f"public if {'they are' if many else 'it is'} meant to be open"
            )
    for i, (rule, _) in enumerate(ruled):
        found = reached[i]
        if rule.methods is None or not found or any(a is None for _, a in found):
            continue
        if any(rule.covers(m) for _, answered in found for m in answered or ()):
            continue
        shown = ", ".join(repr(r) for r, _ in found[:3]) + (" ..." if len(found) > 3 else "")
        warnings.append(
            f"protect rule ({summary(rule)}) protects nothing: the routes it matches "
            f"({shown}) answer none of {_names(rule.methods)}; check its methods"
        )
    return warnings


def _names(methods: Iterable[str]) -> str:
    return ", ".join(sorted(methods))


__all__ = ["IGNORED", "SAFE", "method_warnings"]
