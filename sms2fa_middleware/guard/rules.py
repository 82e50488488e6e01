"""Rules: a ``protect`` entry that says more than a path -- which methods it covers, how
recent the second factor must be (``max_age``, step-up), how long a verified session may sit
unused (``idle``) and, per request, whether it applies at all (``when``).

A plain pattern string keeps its meaning (every method, any verified session). A
:class:`Rule` (or a mapping ``{"path": ..., "methods": [...], "max_age": 300, "idle": 900,
"when": "myapp.rules.outside_office"}``) limits the entry to ``methods`` and/or demands a code
entered at most ``max_age`` seconds ago, and/or a session used within the last ``idle``
seconds; ``when(request, identity)`` (sync or async, like ``identify``; a dotted path in a
mapping) says per request whether the rule applies -- false, and the rule is as if absent.
HEAD counts as GET (frameworks answer HEAD with the GET view).

When several rules match a request, the strictest applies: it is protected if a plain pattern
or any rule covering its method matches (a rule without ``methods`` covers all; one with a
``when`` only when it says true), the smallest ``max_age`` and the smallest ``idle`` among
those rules are required (and the middleware's own ``idle`` option, when smaller).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

_RULE_KEYS = frozenset(("path", "methods", "max_age", "idle", "when"))

#: ``when(request, identity) -> bool`` (or an awaitable of it): the request is the object
#: ``identify`` got (a werkzeug, Starlette or Django request).
When = Callable[[Any, Any], Any]


def _seconds(name: str, value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
        raise ValueError(f"a rule's {name} must be a positive number of seconds, got {value!r}")


def import_callable(path: str) -> Any:
    """The object a dotted path names: ``"package.module.name"`` or ``"package.module:name"``."""
    module, sep, name = path.partition(":")
    if not sep:
        module, _, name = path.rpartition(".")
    if not module or not name:
        raise ValueError(f"a dotted path names a module and an attribute, got {path!r}")
    try:
        found = importlib.import_module(module)
        for part in name.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import {path!r}: {exc}") from None
    return found


class WhenFailed(Exception):
    """A rule's ``when`` raised (the exception is the cause): the request fails closed, as
    when ``identify`` raises (a 500, logged without the exception's message)."""

    def __init__(self, when: Any) -> None:
        name = f"{getattr(when, '__module__', '?')}.{getattr(when, '__qualname__', when)}"
        super().__init__(f"the when of a protect rule ({name}) raised")


@dataclass(frozen=True)
class Rule:
    """One ``protect`` entry: ``path`` (a pattern, as a plain entry), optionally limited to
    ``methods`` (None: every method), demanding a second factor at most ``max_age`` seconds
    old and a session used within ``idle`` seconds (None: no bound), applying only when
    ``when(request, identity)`` is true (None: always). A ``when`` given as a dotted path
    is imported."""

    path: str
    methods: frozenset[str] | None = None
    max_age: int | None = None
    idle: int | None = None
    when: When | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.path, str) or not self.path:
            raise ValueError(f"a rule's path must be a pattern string, got {self.path!r}")
        methods = self.methods
        if methods is not None:
            if isinstance(methods, str):
                methods = [methods]
            names = frozenset(str(m).strip().upper() for m in methods)
            if not names or not all(n.isalpha() for n in names):
                raise ValueError(f"a rule's methods must be HTTP method names, got {methods!r}")
            object.__setattr__(self, "methods", names)
        _seconds("max_age", self.max_age)
        _seconds("idle", self.idle)
        when = self.when
        if isinstance(when, str):
            when = import_callable(when)
            object.__setattr__(self, "when", when)
        if when is not None and not callable(when):
            raise ValueError(f"a rule's when must be a callable or its dotted path, got {when!r}")

    @property
    def plain(self) -> bool:
        """Whether the rule says no more than its path does."""
        return (
            self.methods is None
            and self.max_age is None
            and self.idle is None
            and (self.when is None)
        )

    def covers(self, method: str) -> bool:
        """Whether the rule applies to ``method`` (HEAD counts as GET)."""
        if self.methods is None:
            return True
        return method in self.methods or (method == "HEAD" and "GET" in self.methods)

    @classmethod
    def parse(cls, value: Rule | Mapping[str, Any]) -> Rule:
        """A rule from a :class:`Rule` or a mapping with ``path``, ``methods``, ``max_age``,
        ``idle``, ``when``."""
        if isinstance(value, Rule):
            return value
        unknown = sorted(set(value) - _RULE_KEYS)
        if unknown:
            raise ValueError(
                f"unknown key(s) in a protect rule: {', '.join(unknown)}; "
                f"known: {', '.join(sorted(_RULE_KEYS))}"
            )
        if "path" not in value:
            raise ValueError("a protect rule needs a 'path'")
        methods = value.get("methods")
        return cls(
            value["path"],
            None
            if methods is None
            else frozenset([methods] if isinstance(methods, str) else methods),
            value.get("max_age"),
            value.get("idle"),
            value.get("when"),
        )


def summary(rule: Rule) -> str:
    """What a rule says, as one would write it: ``path '/account', methods POST, max_age 300 s``."""
    parts = [f"path {rule.path!r}"]
    if rule.methods is not None:
        parts.append("methods " + ",".join(sorted(rule.methods)))
    if rule.max_age is not None:
        parts.append(f"max_age {rule.max_age} s")
    if rule.idle is not None:
        parts.append(f"idle {rule.idle} s")
    if rule.when is not None:
        when = rule.when
        parts.append(
            f"when {getattr(when, '__module__', '?')}.{getattr(when, '__qualname__', when)}"
        )
    return ", ".join(parts)


def split_protect(entries: Iterable[Any]) -> tuple[tuple[str, ...], tuple[Rule, ...]]:
    """``protect`` as (plain patterns, rules that say more than a path): a rule that says no
    more than its path becomes a plain pattern."""
    patterns: list[str] = []
    rules: list[Rule] = []
    for entry in entries:
        if isinstance(entry, str):
            patterns.append(entry)
            continue
        if not isinstance(entry, (Rule, Mapping)):
            raise ValueError(f"protect entries are pattern strings or rules, got {entry!r}")
        rule = Rule.parse(entry)
        if rule.plain:
            patterns.append(rule.path)
        else:
            rules.append(rule)
    return tuple(patterns), tuple(rules)


def strictest(a: int | None, b: int | None) -> int | None:
    """The smaller of two bounds in seconds (None: no bound)."""
    return b if a is None else a if b is None else min(a, b)


@dataclass(frozen=True, slots=True)
class Need:
    """What one request must bring, by the rules covering its path and method: whether it
    is ``protected`` at all, the strictest ``max_age`` and ``idle`` (seconds; None: no
    bound), and the rules whose ``when`` is still to be asked (:meth:`resolve`)."""

    protected: bool = True
    max_age: int | None = None
    idle: int | None = None
    pending: tuple[Rule, ...] = ()

    def add(self, rule: Rule) -> Need:
        """This need with ``rule`` applying too (the strictest of both)."""
        return Need(
            True,
            strictest(self.max_age, rule.max_age),
            strictest(self.idle, rule.idle),
            self.pending,
        )

    def resolve(self, applies: Iterable[bool]) -> Need:
        """This need once each pending rule's ``when`` said (in order) whether it applies."""
        need = Need(self.protected, self.max_age, self.idle)
        for rule, applied in zip(self.pending, applies, strict=True):
            if applied:
                need = need.add(rule)
        return need


#: A path protected for every method with no bound of its own (a plain pattern alone).
PLAIN = Need()


@dataclass(frozen=True)
class Demand:
    """What the rules matching one path ask of a request, by method: ``everything`` when a
    plain pattern protects the path (every method, no bound of its own)."""

    everything: bool
    rules: tuple[Rule, ...]

    def for_method(self, method: str) -> Need:
        """The :class:`Need` of a request with ``method`` (its ``when`` rules pending)."""
        need = Need(self.everything)
        pending: list[Rule] = []
        for rule in self.rules:
            if rule.covers(method):
                if rule.when is not None:
                    pending.append(rule)
                else:
                    need = need.add(rule)
        if pending:
            need = Need(need.protected, need.max_age, need.idle, tuple(pending))
        return need


__all__ = [
    "PLAIN",
    "Demand",
    "Need",
    "Rule",
    "When",
    "WhenFailed",
    "import_callable",
    "split_protect",
    "strictest",
    "summary",
]
