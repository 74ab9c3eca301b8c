"""Secrets never reach a log: every log record, and every traceback Python prints, has the
configured secrets (webhook paths and queries, the SMTP password, the EAB key) replaced."""

from __future__ import annotations

import logging
import re
import sys
import threading
import traceback
from collections.abc import Callable, Iterable
from types import TracebackType
from urllib.parse import parse_qsl, unquote, urlsplit

REDACTED = "[redacted]"
# Shorter pieces are no secret worth the name, and replacing them would garble every log line.
MIN_SECRET_LENGTH = 4
_URL_PARTS = re.compile(
    r"(?:(?P<scheme>[^:/?#@]*)://)?(?:(?P<user>[^:/?#@]*)(?::(?P<password>[^/?#@]*))?@)?"
    r"(?P<host>[^/?#@]*)(?P<rest>[/?#].*)?"
)


class Redactor:
    """Replaces each secret text, longest first (so no part of a longer one is left)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        found = {s for s in secrets if len(s) >= MIN_SECRET_LENGTH}
        self.secrets = sorted(found, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text

    def error(self, error: BaseException) -> str:
        """`error` as it may be shown: its type and redacted words."""
        return self(f"{type(error).__name__}: {error}")


def redact_logs(redactor: Redactor) -> Callable[[], None]:
    """Redact every log record made from now on, and every traceback printed for an uncaught
    exception (main thread and others). Returns what undoes it (tests)."""
    if not redactor.secrets:
        return lambda: None
    make_record = logging.getLogRecordFactory()
    excepthook, thread_excepthook = sys.excepthook, threading.excepthook

    def redacted_record(*args: object, **kwargs: object) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        _redact_record(record, redactor)
        return record

    def redacted_excepthook(
        kind: type[BaseException], error: BaseException, trace: TracebackType | None
    ) -> None:
        sys.stderr.write(redactor("".join(traceback.format_exception(kind, error, trace))))

    def redacted_thread_excepthook(hook: threading.ExceptHookArgs) -> None:
        if hook.exc_value is not None:
            trace = traceback.format_exception(hook.exc_type, hook.exc_value, hook.exc_traceback)
            name = hook.thread.name if hook.thread else "?"
            sys.stderr.write(f"Exception in thread {name}:\n" + redactor("".join(trace)))

    logging.setLogRecordFactory(redacted_record)
    sys.excepthook, threading.excepthook = redacted_excepthook, redacted_thread_excepthook

    def undo() -> None:
        logging.setLogRecordFactory(make_record)
        sys.excepthook, threading.excepthook = excepthook, thread_excepthook

    return undo


def _redact_record(record: logging.LogRecord, redactor: Redactor) -> None:
    try:
        message = record.getMessage()
    except (TypeError, ValueError):  # logging reports the bad format itself, later
        return
    redacted = redactor(message)
    if redacted != message:
        record.msg, record.args = redacted, None
    if record.stack_info:
        record.stack_info = redactor(record.stack_info)
    if record.exc_info and record.exc_info[1] is not None:
        # Formatters use exc_text, once set, instead of formatting the traceback again.
        text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        record.exc_text = redactor(text)


def redacted_url(url: str) -> str:
    """`url` as it may be shown: scheme, user and host (port included); the password, path and
    query (where webhooks carry their tokens) replaced by `…`. Parses what urlsplit refuses."""
    parts = _URL_PARTS.fullmatch(url)
    if parts is None:  # a newline, say
        return "…"
    scheme = f"{parts['scheme']}://" if parts["scheme"] is not None else ""
    user = f"{parts['user']}{':…' if parts['password'] is not None else ''}@"
    hidden = "/…" if (parts["rest"] or "").strip("/") else ""
    return f"{scheme}{user if parts['user'] is not None else ''}{parts['host']}{hidden}"


def url_secrets(url: str) -> set[str]:
    """The parts of `url` that are secret, as they may appear in text: the whole URL, the
    password, the path and the query (also percent-decoded), and each query value."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return {url}
    pieces = {url, parts.query, parts.fragment, *(v for _, v in parse_qsl(parts.query))}
    if parts.path.strip("/"):
        pieces |= {parts.path, f"{parts.path}?{parts.query}" if parts.query else parts.path}
    if password:
        pieces.add(password)
    return {text for piece in pieces if piece for text in (piece, unquote(piece))}
