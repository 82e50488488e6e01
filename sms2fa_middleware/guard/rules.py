"""Rules: a ``protect`` entry that says more than a path -- which methods it covers and how
recent the second factor must be (``max_age``, step-up).

A plain pattern string keeps its meaning (every method, any verified session). A
:class:`Rule` (or a mapping ``{"path": ..., "methods": [...], "max_age": 300}``) limits the
entry to ``methods`` and/or demands a code entered at most ``max_age`` seconds ago. When
several rules match a request, the strictest applies: it is protected if any rule covering
its method matches (a rule without ``methods`` covers all), and the smallest ``max_age``
among those is required. HEAD counts as GET (frameworks answer HEAD with the GET view).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

_RULE_KEYS = frozenset(("path", "methods", "max_age"))


@dataclass(frozen=True)
class Rule:
    """One ``protect`` entry: ``path`` (a pattern, as a plain entry), optionally limited to
    ``methods`` (None: every method) and demanding a second factor at most ``max_age``
    seconds old (None: any verified session)."""

    path: str
    methods: frozenset[str] | None = None
    max_age: int | None = None

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
        age = self.max_age
        if age is not None and (isinstance(age, bool) or not isinstance(age, int) or age <= 0):
            raise ValueError(f"a rule's max_age must be a positive number of seconds, got {age!r}")

    @property
    def plain(self) -> bool:
        """Whether the rule says no more than its path does."""
        return self.methods is None and self.max_age is None

    def covers(self, method: str) -> bool:
        """Whether the rule applies to ``method`` (HEAD counts as GET)."""
        if self.methods is None:
            return True
        return method in self.methods or (method == "HEAD" and "GET" in self.methods)

    @classmethod
    def parse(cls, value: Rule | Mapping[str, Any]) -> Rule:
        """A rule from a :class:`Rule` or a mapping with ``path``, ``methods``, ``max_age``."""
        if isinstance(value, Rule):
            return value
        unknown = sorted(set(value) - _RULE_KEYS)
        if unknown:
            raise ValueError(
                f"unknown key(s) in a protect rule: {', '.join(unknown)}; "
                f"known: max_age, methods, path"
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
        )


def split_protect(entries: Iterable[Any]) -> tuple[tuple[str, ...], tuple[Rule, ...]]:
    """``protect`` as (plain patterns, rules that limit methods or demand a max_age): a rule
    that says no more than its path becomes a plain pattern."""
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


@dataclass(frozen=True)
class Demand:
    """What the rules matching one path ask of a request, by method: ``everything`` when a
    plain pattern protects the path (every method, no max_age of its own)."""

    everything: bool
    rules: tuple[Rule, ...]

    def for_method(self, method: str) -> tuple[bool, int | None]:
        """(protected, the max_age required or None) for a request with ``method``."""
        protected = self.everything
        max_age: int | None = None
        for rule in self.rules:
            if rule.covers(method):
                protected = True
                if rule.max_age is not None and (max_age is None or rule.max_age < max_age):
                    max_age = rule.max_age
        return protected, max_age


__all__ = ["Demand", "Rule", "split_protect"]
