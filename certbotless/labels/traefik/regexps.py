"""Traefik's regexp and query matchers as PCRE for nginx. Pure.

Traefik's regexps are Go's RE2; nginx's are PCRE. Only a subset where the two read a pattern
alike is taken (literals, `.`, classes, groups, `|`, `* + ? {n,m}` and their lazy forms, `^ $
\\A \\z \\b \\B \\d \\w \\s`, the `(?i)` flag); anything else raises ValueError with words that
name it. Two targets:

- a header (HeaderRegexp): nginx holds the header's lines joined with ", " (1.23 and later), so
  `^` and `$` are read at the start and end of each line; a pattern without them searches the
  whole value, as Traefik searches each line.
- a query parameter (Query, QueryRegexp): Traefik matches the decoded values of the key; nginx
  sees the query string as sent, so the pattern is matched over `$args`, each character in any
  of its encodings (`a` or `%61`; a space as `+` or `%20`), the pair `key=value` whole between
  `&`s, as Go's url.ParseQuery splits it (a pair with a `;` or a bad escape is dropped there).
"""

from __future__ import annotations

import re
import string

_QUANTIFIER_RE = re.compile(r"\{(\d+)(,(\d*))?\}")
_LOOKS_QUANTIFIER_RE = re.compile(r"\{(?:\d+,?\d*|,\d+)\}")
_MAX_REPEAT = 1000  # RE2's
_PRINTABLE = set(string.printable) - set("\t\n\r\x0b\x0c")
# Characters that are literal in both syntaxes, written escaped for PCRE when not alphanumeric.
_META = set("\\^$.|?*+()[]{}")
_SPACE = "\t\n\x0c\r "  # RE2's \s
_CLASS_ESCAPES = {"d": string.digits, "w": string.ascii_letters + string.digits + "_", "s": _SPACE}
# One character of a query value as sent: a byte other than the separators, or an escape
# (of anything but a newline, which `.` does not match).
_QUERY_UNIT = "(?:[^&;%]|%(?!0[Aa])[0-9A-Fa-f]{2})"
_QUERY_ANY = "(?:[^&;%]|%[0-9A-Fa-f]{2})"  # around an unanchored match: newlines too


class _Pattern:
    """A walk over an RE2 pattern that writes its PCRE, per target."""

    def __init__(self, pattern: str, query: bool) -> None:
        self.text, self.query, self.at, self.depth = pattern, query, 0, 0
        self.out: list[str] = []
        self.starts, self.ends = False, False  # query: anchored at the value's start, end
        self.alternatives = False  # a `|` outside groups

    def fail(self, what: str) -> ValueError:
        return ValueError(f"{what} (at character {self.at + 1} of `{self.text}`)")

    def translate(self) -> str:
        while self.at < len(self.text):
            self.step()
        if self.depth:
            raise self.fail("a group is not closed")
        if self.query and self.alternatives and (self.starts or self.ends):
            raise self.fail("`^`/`$` beside a top-level `|`: put the alternatives in a group")
        return "".join(self.out)

    def step(self) -> None:
        char = self.text[self.at]
        if char not in _PRINTABLE:
            raise self.fail("only printable ASCII characters are read in a pattern here")
        self.at += 1
        if char == "\\":
            self.escape()
        elif char == "[":
            self.atom(self.char_class())
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
        elif char in "*+?":
            raise self.fail(f"`{char}` repeats nothing")
        elif char == "{" and _LOOKS_QUANTIFIER_RE.match(self.text, self.at - 1):
            raise self.fail("`{` repeats nothing")
        else:
            self.atom(self.literal(char))

    def literal(self, char: str) -> str:
        if self.query:
            return _query_char(char)
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
                raise self.fail("a `{…}` that RE2 reads as literal and PCRE may not: write `\\{`")
            low, high = int(found[1]), int(found[3]) if found[3] else None
            if max(low, high or 0) > _MAX_REPEAT or (high is not None and high < low):
                raise self.fail(f"{found[0]}: RE2 repeats at most {_MAX_REPEAT} times, low first")
            self.out.append(found[0])
            self.at = found.end()
        else:
            return
        if self.at < len(self.text) and self.text[self.at] == "?":  # lazy, in both
            self.out.append("?")
            self.at += 1
        if self.at < len(self.text) and self.text[self.at] in "*+?{":
            raise self.fail("a repetition of a repetition (RE2 refuses it; PCRE reads `*+`"
                            " otherwise)")  # fmt: skip

    def escape(self) -> None:
        if self.at >= len(self.text):
            raise self.fail("the pattern ends with a lone `\\`")
        char = self.text[self.at]
        self.at += 1
        if char in _CLASS_ESCAPES or char.lower() in _CLASS_ESCAPES:
            self.atom(self.set_of(_CLASS_ESCAPES[char.lower()], negated=char.isupper()))
        elif char in "Az":
            self.anchor(char == "A")
        elif char in "bB" and not self.query:
            self.out.append("\\" + char)
        elif not char.isalnum() and char != " ":  # RE2 escapes punctuation only
            self.atom(self.literal(char))
        else:
            raise self.fail(f"`\\{char}` is not read here: write the character itself, or a class")

    def set_of(self, members: str, negated: bool = False) -> str:
        if self.query:
            if negated:
                raise self.fail("a negated class in a query pattern: list the characters allowed")
            return "(?:" + "|".join(_query_char(c) for c in sorted(set(members))) + ")"
        escaped = "".join(_class_member(c) for c in sorted(set(members)))
        return f"[{'^' if negated else ''}{escaped}]"

    def char_class(self) -> str:
        """`[…]` → the same set: its ASCII members are worked out and written plainly."""
        end = self.at + (self.text.startswith("^", self.at))
        end += self.text.startswith("]", end)  # a leading `]` is a member
        while (end := self.text.find("]", end)) > 0 and _escaped(self.text, end, self.at):
            end += 1
        if end < 0:
            raise self.fail("a `[` class is not closed")
        body = self.text[self.at : end]
        if "[" in body or "\\S" in body:
            raise self.fail("`[` or `\\S` inside a class (POSIX classes, nesting): list the "
                            "characters")  # fmt: skip
        self.at = end + 1
        negated = body.startswith("^")
        try:
            compiled = re.compile(f"[{body.removeprefix('^').replace(chr(92) + 's', _SPACE)}]")
        except re.error as error:
            raise self.fail(f"the class [{body}] cannot be read: {error}") from None
        members = "".join(c for c in map(chr, range(128)) if compiled.fullmatch(c))
        if not members:
            raise self.fail(f"the class [{body}] is empty")
        return self.set_of(members, negated)

    def group(self) -> None:
        rest = self.text[self.at :]
        named = re.match(r"\?P?<[A-Za-z_][A-Za-z0-9_]*>", rest)
        if rest.startswith("?:") or named:  # no capture: nginx would name a variable after it
            self.at += 2 if rest.startswith("?:") else named.end()  # type: ignore[union-attr]
        elif rest.startswith("?i)") and not self.query:
            self.out.append("(?i)")
            self.at += 3
            return
        elif rest.startswith("?"):
            raise self.fail("only `(?:…)`, named groups and the `(?i)` flag are read here")
        self.depth += 1
        self.out.append("(?:")

    def anchor(self, start: bool) -> None:
        if not self.query:  # the start or end of one of the header's lines
            self.out.append("(?:^|(?<=, ))" if start else "(?=, |$)")
            return
        first, last = self.at == 1 or self.text[: self.at] == "\\A", self.at == len(self.text)
        if not (start and first) and not (not start and last):
            raise self.fail("in a query pattern, `^` is read only first and `$` only last")
        if start:
            self.starts = True
        else:
            self.ends = True

    def dot(self) -> None:
        if not self.query:
            self.atom(".")
            return
        following = self.text[self.at : self.at + 1]
        if following not in ("*", "+"):  # Go's `.` is a character, nginx sees bytes
            raise self.fail("in a query pattern, `.` is read only as `.*` or `.+`")
        self.atom(_QUERY_UNIT)


def _escaped(text: str, at: int, start: int) -> bool:
    """Whether text[at] follows an odd number of backslashes (after `start`)."""
    slashes = len(text[start:at]) - len(text[start:at].rstrip("\\"))
    return slashes % 2 == 1


def _class_member(char: str) -> str:
    return re.escape(char) if char.isprintable() else f"\\x{ord(char):02x}"


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


def header_pcre(pattern: str) -> str:
    """HeaderRegexp's pattern as a PCRE over nginx's value of the header."""
    translated = _Pattern(pattern, query=False).translate()
    _compiles(translated)
    return translated


def query_pcre(key: str, pattern: str | None) -> str:
    """A PCRE over `$args` that matches when a value of `key` is `pattern` (None: empty, as
    Query(`key`) asks) or, with a pattern, is matched by it."""
    if not key.isascii() or not key.isprintable():
        raise ValueError(f"the query key {key!r} is not printable ASCII")
    name = "".join(_query_char(c, key=True) for c in key)
    if pattern is None:
        return f"(?:^|&){name}=?(?:&|$)"
    walk = _Pattern(pattern, query=True)
    value = walk.translate()
    before = "" if walk.starts else f"{_QUERY_ANY}*"
    after = "" if walk.ends else f"{_QUERY_ANY}*"
    translated = f"(?:^|&){name}(?:={before}(?:{value}){after}|(?=&|$))(?:&|$)"
    if not _matches_empty(pattern):  # a key sent without `=` has the value ""
        translated = f"(?:^|&){name}={before}(?:{value}){after}(?:&|$)"
    _compiles(translated)
    return translated


def query_value_pattern(value: str) -> str:
    """Query(`key`, `value`)'s exact value as a query pattern."""
    return "^" + "".join("\\" + c if c in _META else c for c in value) + "$"


def _matches_empty(pattern: str) -> bool:
    try:
        return re.search(pattern, "") is not None
    except re.error:
        return False


def _compiles(translated: str) -> None:
    try:
        re.compile(translated)
    except re.error as error:
        raise ValueError(f"the pattern cannot be read ({error})") from None
