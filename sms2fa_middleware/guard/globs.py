"""Glob path patterns matched in time linear in the path, whatever the path.

Request paths are untrusted and may be 60 KB long: a glob translated to one regex
(``[^/]*-[^/]*-[^/]*``) backtracks, cubic in the path for three stars in a segment. So a glob
is matched segment by segment, each segment glob split on ``*`` into fixed-width pieces
(literal characters, ``?``, ``[...]``). A piece is compiled to a regex with no quantifier
and no alternation: it tries each start position once and compares at most its width there.
The pieces are placed left to right, each at its leftmost fit, which is optimal because a
star between two pieces absorbs whatever lies between them. ``**`` segments are handled the
same way one level up: the groups of segments between them are placed leftmost, in order.

Semantics (docs/middleware.md, "How paths are matched"): ``*`` and ``?`` stay inside one segment,
``**`` as a whole segment is zero or more segments, ``[...]`` is a character class (``[!...]``
negated), and a match covers the path and everything below it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence


def _class(body: str) -> str:
    """A ``[...]`` body as a one-character regex class; ``[!...]`` is negated. (Segments hold
    no ``/``, so a class never matches one: the old regex's ``[^/...]`` meant that, but its
    ``/`` was stripped again, letting ``[!a]`` match ``/`` and ``[!]`` not compile.)"""
    body = body.replace("\\", "\\\\").replace("/", "")
    negated = body.startswith(("!", "^"))  # "^" negated in the old regex too
    return "[^/" + body[1:] + "]" if negated else "[" + body + "]"


class _Piece:
    """Fixed-width run of a segment glob between stars."""

    __slots__ = ("regex", "width")

    def __init__(self, fragments: Sequence[str]) -> None:
        self.width = len(fragments)
        self.regex = re.compile("".join(fragments))


class SegmentGlob:
    """One segment of a glob pattern (``*.pdf``, ``v[12]``, ``*-*-*.csv``)."""

    __slots__ = ("_first", "_last", "_middle", "_min", "_starred")

    def __init__(self, segment: str) -> None:
        pieces: list[list[str]] = [[]]
        i = 0
        while i < len(segment):
            c = segment[i]
            if c == "*":
                pieces.append([])
            elif c == "?":
                pieces[-1].append("[^/]")
            elif c == "[" and "]" in segment[i + 2 :]:
                end = segment.index("]", i + 2)
                fragment = _class(segment[i + 1 : end])
                try:  # each fragment must be one character class on its own
                    re.compile(fragment)
                except re.error as exc:
                    raise ValueError(
                        f"bad character class in path pattern segment {segment!r}: {exc}"
                    ) from None
                pieces[-1].append(fragment)
                i = end
            else:
                pieces[-1].append(re.escape(c))
            i += 1
        compiled = [_Piece(p) for p in pieces]
        self._starred = len(compiled) > 1
        self._first, self._last = compiled[0], compiled[-1]
        self._middle = tuple(p for p in compiled[1:-1] if p.width)
        self._min = sum(p.width for p in compiled)

    def match(self, text: str) -> bool:
        """Whether the whole of one path segment ``text`` matches: O(len(text) * width)."""
        if not self._starred:
            return len(text) == self._min and self._first.regex.fullmatch(text) is not None
        if len(text) < self._min:
            return False
        first, last = self._first, self._last
        if first.width and first.regex.match(text) is None:
            return False
        pos, end = first.width, len(text) - last.width
        for piece in self._middle:  # leftmost fit, before the last piece's place
            found = piece.regex.search(text, pos, end)
            if found is None:
                return False
            pos = found.end()
        return not last.width or last.regex.fullmatch(text, end) is not None


class Glob:
    """A whole glob pattern (canonical: :func:`~.paths.normalize`), matched on segments."""

    __slots__ = ("_groups", "_head")

    def __init__(self, pattern: str) -> None:
        groups: list[list[SegmentGlob]] = [[]]
        for segment in pattern.strip("/").split("/"):
            if segment == "**":
                groups.append([])
            else:
                groups[-1].append(SegmentGlob(segment))
        self._head = tuple(groups[0])
        self._groups = tuple(tuple(g) for g in groups[1:] if g)

    def match(self, segments: Sequence[str]) -> bool:
        """Whether the glob matches a path given as its segments (``"/"`` is ``[""]``), or
        a path above it: the head at the start, each group after a ``**`` at its leftmost
        fit after the one before; what follows the last is free."""
        head = self._head
        if len(segments) < len(head):
            return False
        if not all(g.match(s) for g, s in zip(head, segments, strict=False)):
            return False
        pos = len(head)
        for group in self._groups:
            pos = _find(group, segments, pos)
            if pos < 0:
                return False
        return True


def _find(group: Sequence[SegmentGlob], segments: Sequence[str], start: int) -> int:
    """Where ``group`` first matches consecutive ``segments`` from ``start``: the index after
    it, or -1. O(len(segments) * len(group)) segment matches; the group is the pattern's."""
    width = len(group)
    first, rest = group[0].match, group[1:]
    for at in range(start, len(segments) - width + 1):
        if first(segments[at]) and all(g.match(segments[at + k]) for k, g in enumerate(rest, 1)):
            return at + width
    return -1


__all__ = ["Glob", "SegmentGlob"]
