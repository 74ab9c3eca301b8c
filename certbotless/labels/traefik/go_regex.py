"""Go's regular expressions (RE2, Traefik's) as nginx's PCRE: the one place that decides which
of Go's syntax PCRE reads alike, and writes it so that nginx reads it as Go does. Pure.

Taken: literals (`\\` before punctuation, `\\t \\n \\r \\f \\a`, `\\x00`-`\\x7f`), `.`, classes
(ranges, `\\d \\w \\s` and negations, POSIX names like `[[:alpha:]]`, written out as Go defines
them), groups (`(…)`, `(?:…)`, named groups, numbered as Go numbers them), `|`, `* + ? {n}
{n,} {n,m}` (at most 1000) and their lazy forms, `^ $ \\A \\z \\b \\B`, the flags `i` and `s`
(`(?i)` first, or `(?i:…)`). Refused, with words naming the part: anything else (lookarounds,
backreferences, `(?m)`, `(?U)`, `\\p{…}`, `\\Q…\\E`, `\\x` above `7f`, possessive and repeated
repetitions, `{,n}`), non-ASCII, over 1024 characters. `\\s` is written `[\\t\\n\\f\\r ]`: PCRE's
`\\s` also takes the vertical tab, RE2's does not. Each subject has its subclass:

- plain (`to_pcre`: redirectRegex, stripPrefixRegex, replacePathRegex): Go's `$` is the end of
  the text, PCRE's allows a final newline: it is written `\\z`;
- a header (`header_pcre`: HeaderRegexp): nginx holds the header's lines joined with ", ", so
  `^` and `$` are read at the start and end of each line;
- a query parameter: query_regex.py.

The PCRE is plain text: nginx's configuration reads `\\\\` and `\\"` inside a quoted string, so
the edge quotes it (edge/conditions.py `quoted`). nginx matches bytes, Go UTF-8 characters: the
same for ASCII; `.` or a negated class stands for one byte of a non-ASCII character.
"""

from __future__ import annotations

import re
import string
import warnings
from dataclasses import dataclass

MAX_REPEAT = 1000  # RE2 refuses more
MAX_LENGTH = 1024
_QUANTIFIER_RE = re.compile(r"\{(\d+)(,(\d*))?\}")
_LOOKS_QUANTIFIER_RE = re.compile(r"\{(?:\d+,?\d*|,\d+)\}")
_FLAGS_RE = re.compile(r"\?(-?[is]+|[is]+-[is]+)([:)])")
_NAMED_RE = re.compile(r"\?P?<[A-Za-z_][A-Za-z0-9_]*>")
_PRINTABLE = set(string.printable) - set("\t\n\r\x0b\x0c")
_META = set("\\^$.|?*+()[]{}")
_CONTROL_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f", "a": "\a"}
_DIGITS, _WORD = set(string.digits), set(string.ascii_letters + string.digits + "_")
_ASCII = set(map(chr, range(128)))
# Go's regexp/syntax classes (perl_groups.go), all ASCII.
_PERL = {"d": _DIGITS, "w": _WORD, "s": set("\t\n\f\r ")}
_POSIX = {
    "alnum": set(string.ascii_letters + string.digits), "alpha": set(string.ascii_letters),
    "ascii": _ASCII, "blank": set("\t "), "cntrl": set(map(chr, [*range(32), 127])),
    "digit": _DIGITS, "graph": set(map(chr, range(33, 127))), "lower": set(string.ascii_lowercase),
    "print": set(map(chr, range(32, 127))), "punct": set(string.punctuation),
    "space": set("\t\n\v\f\r "), "upper": set(string.ascii_uppercase), "word": _WORD,
    "xdigit": set(string.hexdigits),
}  # fmt: skip


class NotPortable(ValueError):
    """The regex is not one that Go and nginx read alike: the message says why."""


@dataclass(frozen=True)
class Members:
    """A class's ASCII members, and whether it also takes every non-ASCII character."""

    ascii: frozenset[str]
    non_ascii: bool = False

    def __or__(self, other: Members) -> Members:
        return Members(self.ascii | other.ascii, self.non_ascii or other.non_ascii)

    def negated(self) -> Members:
        return Members(frozenset(_ASCII - self.ascii), not self.non_ascii)


@dataclass(frozen=True)
class Pcre:
    text: str
    groups: int  # capturing groups, named ones too (numbered as Go numbers them)
    names: tuple[tuple[str, int], ...]  # named groups and their numbers
    alternates_at_top: bool  # a `|` outside every group


class GoRegex:
    """A walk over a Go (RE2) regex that writes its PCRE; subclasses say how their subject
    reads anchors, `.`, literals and classes."""

    flags_read = True  # (?i), (?s)

    def __init__(self, pattern: str, flags_anywhere: bool = False) -> None:
        self.text, self.at, self.depth, self.groups = pattern, 0, 0, 0
        self.out: list[str] = []
        # A bare flag group after the start, which PCRE reads as RE2 (to the group's end) but
        # nginx's `(?>…)` wrapping would not: taken only for a regex used as written (njs).
        self.flags_anywhere = flags_anywhere
        self.bare_flags: list[int] = []  # where in `out` (Python's check leaves them out)
        self.names: list[tuple[str, int]] = []
        self.alternatives = False  # a `|` outside groups

    def fail(self, what: str) -> NotPortable:
        return NotPortable(f"{what} (at character {self.at + 1} of `{self.text}`)")

    def translate(self) -> str:
        if not self.text or len(self.text) > MAX_LENGTH:
            raise NotPortable(f"a regular expression must have 1 to {MAX_LENGTH} characters")
        while self.at < len(self.text):
            self.step()
        if self.depth:
            raise self.fail("a group is not closed")
        return "".join(self.out)

    def step(self) -> None:
        char = self.text[self.at]
        if char not in _PRINTABLE:
            raise self.fail("only printable ASCII characters are read in a regular expression")
        self.at += 1
        if char == "\\":
            self.escape()
        elif char == "[":
            self.atom(self.set_of(_char_class(self)))
        elif char == "(":
            self.group()
        elif char == ")":
            if self.depth == 0:
                raise self.fail("a `)` closes no group")
            self.depth -= 1
            self.out.append(")")
            self.quantifier()
        elif char == "|":
            self.alternatives = self.alternatives or self.depth == 0
            self.out.append("|")
        elif char in "^$":
            self.anchor(char == "^")
        elif char == ".":
            self.dot()
        elif char in "*+?" or (char == "{" and _LOOKS_QUANTIFIER_RE.match(self.text, self.at - 1)):
            raise self.fail(f"`{char}` repeats nothing")
        else:
            self.atom(self.literal(char))

    def literal(self, char: str) -> str:
        if not char.isprintable():
            return f"\\x{ord(char):02x}"
        return "\\" + char if char in _META else char

    def atom(self, text: str) -> None:
        self.out.append(text)
        self.quantifier()

    def quantifier(self) -> None:
        if self.at >= len(self.text):
            return
        char = self.text[self.at]
        if char in "*+?":
            self.out.append(char)
            self.at += 1
        elif char == "{" and _LOOKS_QUANTIFIER_RE.match(self.text, self.at):
            found = _QUANTIFIER_RE.match(self.text, self.at)
            if found is None:  # `{,n}`: literal in RE2, a repetition in newer PCRE
                raise self.fail("`{,n}` is read differently by RE2 and PCRE: write {0,n} or `\\{`")
            low, high = int(found[1]), int(found[3]) if found[3] else None
            if max(low, high or 0) > MAX_REPEAT or (high is not None and high < low):
                raise self.fail(f"{found[0]}: RE2 repeats at most {MAX_REPEAT} times, low first")
            self.out.append(found[0])
            self.at = found.end()
        else:
            return
        if self.text.startswith("?", self.at):  # lazy, in both
            self.out.append("?")
            self.at += 1
        following = self.text[self.at : self.at + 1]
        if following in ("*", "+", "?") or (
            following == "{" and _LOOKS_QUANTIFIER_RE.match(self.text, self.at)
        ):
            raise self.fail("a repetition of a repetition (RE2 refuses it; PCRE reads `*+` "
                            "as possessive)")  # fmt: skip

    def escape(self) -> None:
        if self.at >= len(self.text):
            raise self.fail("the regular expression ends with a lone `\\`")
        char = self.text[self.at]
        self.at += 1
        if char.lower() in _PERL:
            self.atom(self.class_escape(char))
        elif char in "Az":
            self.anchor(char == "A", escaped=True)
        elif char in "bB":
            self.boundary(char)
        else:
            self.atom(self.literal(self.escaped_char(char)))

    def escaped_char(self, char: str) -> str:
        """The character `\\` + `char` stands for (the `\\` already read)."""
        if char in _CONTROL_ESCAPES:
            return _CONTROL_ESCAPES[char]
        if char == "x" and re.fullmatch(r"[0-7][0-9A-Fa-f]", self.text[self.at : self.at + 2]):
            self.at += 2
            return chr(int(self.text[self.at - 2 : self.at], 16))
        if not char.isalnum() and char != " ":  # RE2 escapes punctuation only
            return char
        raise self.fail(f"`\\{char}` is not read alike by RE2 and PCRE: write the character "
                        "itself (`\\x` up to 7f), or a class")  # fmt: skip

    def class_escape(self, char: str) -> str:
        """`\\d \\w` are ASCII in both; RE2's `\\s` lacks PCRE's vertical tab: written out."""
        return "\\" + char if char in "dDwW" else self.set_of(perl_class(char))

    def boundary(self, char: str) -> None:
        self.out.append("\\" + char)

    def set_of(self, members: Members) -> str:
        if not members.ascii and not members.non_ascii:
            raise self.fail("the class is empty")
        if members.non_ascii:  # the class of the ASCII left out, negated
            return f"[^{_ranges(_ASCII - members.ascii)}]" if members.ascii != _ASCII else \
                "[\\x00-\\xff]"  # fmt: skip
        return f"[{_ranges(members.ascii)}]"

    def group(self) -> None:
        rest = self.text[self.at :]
        flags = _FLAGS_RE.match(rest)
        if flags and not self.flags_read:
            raise self.fail(f"({flags[0]}… flags are not read here: write the cases out, [aA]")
        named = _NAMED_RE.match(rest)
        if flags and flags[2] == ")":
            if self.at != 1 and not self.flags_anywhere:  # PCRE and Python differ here
                raise self.fail("a flag group `(?i)` is read here only first: write (?i:…)")
            if self.at != 1:
                self.bare_flags.append(len(self.out))
            self.out.append(f"({flags[0]}")
            self.at += flags.end()
            return
        if rest.startswith("?:") or flags:
            written = "(?:" if rest.startswith("?:") else f"({flags[0]}"  # type: ignore[index]
            self.at += len(written) - 1
        elif named or not rest.startswith("?"):
            written, self.groups = "(", self.groups + 1  # unnamed in PCRE: no nginx variable
            if named:
                self.names.append((named[0].rstrip(">").split("<")[1], self.groups))
                self.at += named.end()
        else:
            form = rest[: 3 if rest.startswith("?<") else 2]
            raise self.fail(f"({form}… is not read alike by RE2 and PCRE: only (…), (?:…), "
                            "named groups and the flags i and s are")  # fmt: skip
        self.depth += 1
        self.out.append(written)

    def anchor(self, start: bool, escaped: bool = False) -> None:
        """Go's `^`/`\\A` is the text's start, `$`/`\\z` its end; PCRE's `$` allows a newline."""
        self.out.append(("\\A" if escaped else "^") if start else "\\z")

    def dot(self) -> None:
        self.atom(".")


def _char_class(walk: GoRegex) -> Members:
    """`[…]` (the `[` read) → its members, as Go reads them."""
    negated = walk.text.startswith("^", walk.at)
    walk.at += negated
    members, first = Members(frozenset()), True
    while not walk.text.startswith("]", walk.at) or first:
        if walk.at >= len(walk.text):
            raise walk.fail("a `[` class is not closed")
        members |= _class_item(walk)
        first = False
    walk.at += 1
    return members.negated() if negated else members


def _class_item(walk: GoRegex) -> Members:
    posix = re.match(r"\[:(\^?)([a-z]+):\]", walk.text[walk.at :])
    if posix:
        if posix[2] not in _POSIX:
            raise walk.fail(f"[:{posix[2]}:] is not one of RE2's POSIX classes")
        walk.at += posix.end()
        named = Members(frozenset(_POSIX[posix[2]]))
        return named.negated() if posix[1] else named
    if (
        walk.text.startswith("\\", walk.at)
        and walk.text[walk.at + 1 : walk.at + 2].lower() in _PERL
    ):
        walk.at += 2
        return perl_class(walk.text[walk.at - 1])
    low = _class_char(walk)
    if walk.text.startswith("-", walk.at) and walk.text[walk.at + 1 : walk.at + 2] not in (
        "]",
        "",
    ):
        walk.at += 1
        high = _class_char(walk)
        if high < low:
            raise walk.fail(f"the range {low!r}-{high!r} is backwards")
        return Members(frozenset(map(chr, range(ord(low), ord(high) + 1))))
    return Members(frozenset(low))


def _class_char(walk: GoRegex) -> str:
    char = walk.text[walk.at : walk.at + 1]
    if char not in _PRINTABLE or not char:
        raise walk.fail("only printable ASCII characters are read in a class")
    walk.at += 1
    if char == "[":
        raise walk.fail("a `[` inside a class: write `\\[`")
    if char != "\\":
        return char
    walk.at += 1
    escaped = walk.text[walk.at - 1 : walk.at]
    if not escaped:
        raise walk.fail("a `[` class is not closed")
    return walk.escaped_char(escaped)


def perl_class(char: str) -> Members:
    """The members of `\\d \\w \\s` (`char` lower case) or their negations (upper case)."""
    members = Members(frozenset(_PERL[char.lower()]))
    return members.negated() if char.isupper() else members


class _Header(GoRegex):
    def anchor(self, start: bool, escaped: bool = False) -> None:
        """The start or end of one of the header's lines (joined with ", ")."""
        self.out.append("(?:^|(?<=, ))" if start else "(?=, |$)")


def _ranges(members: set[str] | frozenset[str]) -> str:
    """Characters as a class body: runs as ranges, the class's own characters escaped."""
    codes, parts = sorted(map(ord, members)), []
    while codes:
        end = 0
        while end + 1 < len(codes) and codes[end + 1] == codes[0] + end + 1:
            end += 1
        low, high = _class_member(chr(codes[0])), _class_member(chr(codes[end]))
        parts.append(low if end == 0 else f"{low}{high}" if end == 1 else f"{low}-{high}")
        codes = codes[end + 1 :]
    return "".join(parts)


def _class_member(char: str) -> str:
    if not char.isprintable():
        return f"\\x{ord(char):02x}"
    return "\\" + char if char in "\\]^-[" else char


def compiles(translated: str) -> None:
    """PCRE's reading, checked with Python's (the same for what is written here)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            re.compile(translated.replace("\\z", "\\Z"))  # Python's name for PCRE's \z
    except re.error as error:
        raise NotPortable(f"the regular expression cannot be read ({error})") from None


def to_pcre(regex: str, flags_anywhere: bool = False) -> Pcre:
    """A regex matched against a whole subject (a URL, a path) as Go matches it;
    `flags_anywhere`: a bare flag group `(?i)` is taken after the start too."""
    walk = GoRegex(regex, flags_anywhere)
    text = walk.translate()
    compiles("".join(p for i, p in enumerate(walk.out) if i not in walk.bare_flags))
    return Pcre(text, walk.groups, tuple(walk.names), walk.alternatives)


def header_pcre(pattern: str) -> str:
    """HeaderRegexp's pattern as a PCRE over nginx's value of the header."""
    translated = _Header(pattern).translate()
    compiles(translated)
    return translated
