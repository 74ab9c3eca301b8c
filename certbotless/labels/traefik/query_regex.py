"""Traefik's Query and QueryRegexp matchers as a PCRE over nginx's `$args`. Pure.

Traefik matches the decoded values of the key; nginx sees the query string as sent, so the
pattern (a Go regex, read as go_regex.py reads it) is matched with each character in any of its
encodings (`a` or `%61`; a space as `+` or `%20`), the pair `key=value` whole between `&`s, as
Go's url.ParseQuery splits it (a pair with a `;` or a bad escape is dropped there). What would
count characters of the decoded value is refused: `.` other than `.*`/`.+`, negated classes,
flags, `\\b`, `^` other than first and `$` other than last.
"""

from __future__ import annotations

import re

from certbotless.labels.traefik.go_regex import (
    GoRegex,
    Members,
    NotPortable,
    compiles,
    perl_class,
    to_pcre,
)

# One character of a query value as sent: a byte other than the separators, or an escape
# (of anything but a newline, which `.` does not match).
_QUERY_UNIT = "(?:[^&;%]|%(?!0[Aa])[0-9A-Fa-f]{2})"
_QUERY_ANY = "(?:[^&;%]|%[0-9A-Fa-f]{2})"  # around an unanchored match: newlines too
_META = set("\\^$.|?*+()[]{}")


class _Query(GoRegex):
    flags_read = False  # (?i) would not reach the encoded forms

    def __init__(self, pattern: str) -> None:
        super().__init__(pattern)
        self.starts, self.ends = False, False  # anchored at the value's start, end

    def translate(self) -> str:
        translated = super().translate()
        if self.alternatives and (self.starts or self.ends):
            raise self.fail("`^`/`$` beside a top-level `|`: put the alternatives in a group")
        return translated

    def literal(self, char: str) -> str:
        return _query_char(char)

    def class_escape(self, char: str) -> str:
        return self.set_of(perl_class(char))

    def set_of(self, members: Members) -> str:
        if members.non_ascii:
            raise self.fail("a negated class in a query pattern: list the characters allowed")
        if not members.ascii:
            raise self.fail("the class is empty")
        return "(?:" + "|".join(_query_char(c) for c in sorted(members.ascii)) + ")"

    def boundary(self, char: str) -> None:
        raise self.fail(f"`\\{char}` is not read in a query pattern")

    def anchor(self, start: bool, escaped: bool = False) -> None:
        first = self.at == 1 or (self.at == 2 and escaped)
        if not (start and first) and not (not start and self.at == len(self.text)):
            raise self.fail("in a query pattern, `^` is read only first and `$` only last")
        if start:
            self.starts = True
        else:
            self.ends = True

    def dot(self) -> None:
        if self.text[self.at : self.at + 1] not in ("*", "+"):  # Go's `.` is a character
            raise self.fail("in a query pattern, `.` is read only as `.*` or `.+`")
        self.atom(_QUERY_UNIT)


def _query_char(char: str, key: bool = False) -> str:
    """`char` in any of its encodings in a query string as Go decodes it (in a key, `=`
    travels encoded: the first one ends the key)."""
    code = f"{ord(char):02X}"
    encoded = f"%{code[0]}" + (f"[{code[1]}{code[1].lower()}]" if code[1].isalpha() else code[1])
    if not char.isprintable():
        return encoded
    if char == " ":
        return f"(?:\\+|{encoded})"
    if char in "&;%+#" or (key and char == "="):  # separators, escapes, a plus: encoded
        return encoded
    return f"(?:{re.escape(char)}|{encoded})"


def query_pcre(key: str, pattern: str | None) -> str:
    """A PCRE over `$args` that matches when a value of `key` is `pattern` (None: empty, as
    Query(`key`) asks) or, with a pattern, is matched by it."""
    if not key.isascii() or not key.isprintable():
        raise NotPortable(f"the query key {key!r} is not printable ASCII")
    name = "".join(_query_char(c, key=True) for c in key)
    if pattern is None:
        return f"(?:^|&){name}=?(?:&|$)"
    walk = _Query(pattern)
    value = walk.translate()
    before = "" if walk.starts else f"{_QUERY_ANY}*"
    after = "" if walk.ends else f"{_QUERY_ANY}*"
    translated = f"(?:^|&){name}(?:={before}(?:{value}){after}|(?=&|$))(?:&|$)"
    if not _matches_empty(pattern):  # a key sent without `=` has the value ""
        translated = f"(?:^|&){name}={before}(?:{value}){after}(?:&|$)"
    compiles(translated)
    return translated


def query_value_pattern(value: str) -> str:
    """Query(`key`, `value`)'s exact value as a query pattern."""
    return "^" + "".join("\\" + c if c in _META else c for c in value) + "$"


def _matches_empty(pattern: str) -> bool:
    """Whether the pattern (already read as a query pattern) matches the empty value."""
    return re.search(to_pcre(pattern).text.replace("\\z", "\\Z"), "") is not None
