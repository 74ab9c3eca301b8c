"""`certbotless status`: the page's summary in the terminal."""

from __future__ import annotations

from certbotless.web.overview import Filter, overview
from certbotless.web.summary import summary_text
from tests.web.status_data import CA_WORDS, NOW, FakeSource


def test_the_summary_lists_what_needs_someone_most_urgent_first() -> None:
    text = summary_text(overview(FakeSource(), Filter(), NOW))
    lines = text.splitlines()
    assert lines[0] == "certificates: 5 · failing 2 · expiring or expired 1 · ok 1"
    named = [
        line.split()[1].rstrip(":")
        for line in lines[1:]
        if not line.startswith((" ", "rate", "orders"))
    ]
    assert named == ["old", "new", "api"]  # shop (ok) and manual (unwanted) are only counted
    assert "3 failed in a row, next attempt" in text and CA_WORDS in text
    assert lines[-1].startswith("rate limit: example.test 6/50 new certificates in 7 days")
    assert "orders: service evil_app 30/30 of its share (10 orders, 10 failed), full until" in text
