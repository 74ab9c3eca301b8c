"""`certbotless status`: the status page's summary in the terminal."""

from __future__ import annotations

from certbotless.web.overview import Overview


def summary_text(view: Overview) -> str:
    """The counts, then each certificate that needs someone (most urgent first) with the CA's
    words, then the rate-limit budget; certificates that need nobody are counted, not listed."""
    counts = view.counts
    lines = [
        f"certificates: {counts['all']} · failing {counts['failing']} · expiring or expired "
        f"{counts['expiring']} · ok {counts['ok']}"
    ]
    for row in view.rows:
        if row.status in ("ok", "renewing", "unwanted"):
            continue
        cert, record = row.listed.cert, row.listed.status
        details = []
        if cert is not None:
            details.append(f"expires {cert.not_after:%Y-%m-%d %H:%M} UTC ({row.days_left:.1f} d)")
        if record is not None and record.failures:
            retry = record.next_attempt
            then = f", next attempt {retry:%Y-%m-%d %H:%M} UTC" if retry else ""
            details.append(f"{record.failures} failed in a row{then}")
        words = f"{row.status.upper():<9} {row.listed.name}: {'; '.join(details)}"
        if row.listed.failure is not None:
            words += f"\n          {row.listed.failure.error}"
        lines.append(words)
    for claimant in view.claimants:
        frees = claimant.frees_at
        lines.append(f"orders: {claimant.claimant} {claimant.used}/{claimant.limit} of its share "
                     f"({claimant.orders} orders, {claimant.failed} failed)"
                     + (f", full until {frees:%Y-%m-%d %H:%M} UTC" if frees else ""))  # fmt: skip
    for use in view.budget:
        lines.append(f"rate limit: {use.domain} {use.used}/{use.limit} new certificates in 7 "
                     f"days (one frees up {use.frees_at:%Y-%m-%d %H:%M} UTC)")  # fmt: skip
    return "\n".join(lines) + "\n"
