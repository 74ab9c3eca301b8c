"""Go's regular expressions (RE2, Traefik's) written for nginx's PCRE: only the syntax both read
the same way is accepted, and written so that nginx reads it as Go does (Go's `$` is the end of
the text, PCRE's allows a final newline: it becomes `\\z`); the rest is refused in words.

Subjects are matched as bytes by nginx and as UTF-8 characters by Go: the same for the ASCII
of URLs as sent (percent-encoded); in a decoded path, `.` stands for one byte of a non-ASCII
character (docs/traefik-labels.md says so)."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

_PRINTABLE_RE = re.compile(r"^[\x20\x21\x23-\x7e]{1,1024}$", re.ASCII)  # no '"', no controls
_KEPT_ESCAPES = set("dDwWbBAztnrf")
_FLAGS_RE = re.compile(r"\(\?[is-]*[:)]")  # (?i) (?i:…) (?-s) …; (?m), (?U) refused
_REPEAT_RE = re.compile(r"\{([0-9]*)(,([0-9]*))?\}")
_QUANTIFIERS = "*+?}"
MAX_REPEAT = 1000  # RE2 refuses more


class NotPortable(ValueError):
    """The regex is not one that Go and nginx read alike: the message says why."""


@dataclass(frozen=True)
class Pcre:
    text: str  # for nginx, inside double quotes
    groups: int  # capturing groups
    alternates_at_top: bool  # a `|` outside every group


def to_pcre(regex: str) -> Pcre:
    if not _PRINTABLE_RE.match(regex):
        raise NotPortable("must be a regular expression of printable ASCII without '\"'")
    out: list[str] = []
    groups, depth, top_alternation, index = 0, 0, False, 0
    while index < len(regex):
        char = regex[index]
        if char == "\\":
            out.append(_escape(regex, index))
            index += 4 if regex[index + 1 : index + 2] == "x" else 2
            continue
        if char == "[":
            end = _class_end(regex, index)
            out.append(_class(regex[index:end]))
            index = end
            continue
        if char == "(":
            flags = _FLAGS_RE.match(regex, index)
            if regex.startswith("(?:", index) or flags:
                token = "(?:" if regex.startswith("(?:", index) else flags[0]  # type: ignore[index]
            elif regex.startswith("(?", index):
                raise NotPortable(f"{_group_form(regex, index)} is not read alike by Go (RE2) "
                                  "and nginx (PCRE): use (…) or (?:…)")  # fmt: skip
            else:
                token, groups = "(", groups + 1
            depth += token.endswith(("(", ":"))
            out.append(token)
            index += len(token)
            continue
        if char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            top_alternation = True
        elif char == "$":
            char = "\\z"
        elif char == "{":
            index = _repeat(regex, index, out)
            continue
        elif char in "*+?" and regex[index + 1 : index + 2] == "+":
            raise NotPortable(f"{char}+ (possessive) is not Go's (RE2) syntax")
        out.append(char)
        index += 1
    text = "".join(out)
    _compiles(text)
    return Pcre(text, groups, top_alternation)


def _escape(regex: str, index: int) -> str:
    nxt = regex[index + 1 : index + 2]
    if nxt == "x" and re.fullmatch(r"[0-7][0-9A-Fa-f]", regex[index + 2 : index + 4]):
        return regex[index : index + 4]  # ASCII only: above, Go means a UTF-8 character
    if nxt in _KEPT_ESCAPES or (nxt and not nxt.isalnum() and nxt not in "\\ "):
        return "\\" + nxt
    if nxt in ("s", "S"):
        raise NotPortable(f"\\{nxt} differs (PCRE counts the vertical tab as a space, RE2 "
                          "does not): write [ \\t\\n\\f\\r] or [^ \\t\\n\\f\\r]")  # fmt: skip
    if nxt == "\\":
        raise NotPortable("a double backslash is read once by nginx's configuration: match "
                          "the backslash with [\\x5c] instead")  # fmt: skip
    raise NotPortable(f"\\{nxt} is not read alike by Go (RE2) and nginx (PCRE): "
                      "write the character or class it stands for")  # fmt: skip


def _class_end(regex: str, start: int) -> int:
    """The index after the character class starting at `start` (`]` first is literal)."""
    index = start + 1 + (regex[start + 1 : start + 2] == "^")
    index += regex[index : index + 1] == "]"
    while index < len(regex):
        if regex[index] == "\\":
            index += 2
            continue
        if regex.startswith("[:", index):
            close = regex.find(":]", index + 2)
            index = close + 2 if close > 0 else index + 1
            continue
        if regex[index] == "]":
            return index + 1
        index += 1
    raise NotPortable("a character class is not closed")


def _class(text: str) -> str:
    """A character class: its escapes checked as outside it (`$` is a character here)."""
    out, index = [], 0
    while index < len(text):
        if text[index] == "\\":
            out.append(_escape(text, index))
            index += 4 if text[index + 1 : index + 2] == "x" else 2
        else:
            out.append(text[index])
            index += 1
    return "".join(out)


def _group_form(regex: str, index: int) -> str:
    return regex[index : index + (4 if regex.startswith("(?<", index) else 3)] + "…"


def _repeat(regex: str, index: int, out: list[str]) -> int:
    """A `{n}`, `{n,}` or `{n,m}` repetition (else a literal `{`, as both read it)."""
    found = _REPEAT_RE.match(regex, index)
    if found is None or not found[1]:
        if found is not None:  # {,n}: a literal for Go, a repetition for newer PCRE
            raise NotPortable("{,n} is read differently by Go and PCRE: write {0,n}")
        out.append("\\{")
        return index + 1
    numbers = [int(n) for n in (found[1], found[3]) if n]
    if max(numbers) > MAX_REPEAT:
        raise NotPortable(f"repetitions above {MAX_REPEAT} are refused by Go (RE2)")
    out.append(found[0])
    return found.end()


def _compiles(text: str) -> None:
    try:
        with warnings.catch_warnings():  # [[:alpha:]]: a POSIX class to PCRE, a warning here
            warnings.simplefilter("ignore", FutureWarning)
            re.compile(text.replace("\\z", "\\Z"))  # Python's name for PCRE's \z
    except re.error as error:
        raise NotPortable(f"is not a regular expression: {error}") from None
    if re.search(r"(?<!\\)[*+?}]\s*[*+]", text.replace("\\\\", "")):
        raise NotPortable("a repetition of a repetition is not Go's (RE2) syntax")
