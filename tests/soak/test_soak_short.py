"""The chaos soak, short (about two minutes with its start-up): the whole system as ``make demo``
runs it (embedded Postgres, the Dagster daemon and webserver, the API with two workers, the fake
DashScope with its fault mix), under live traffic, cached reads, chat streams and realtime
subscribers, with Postgres restarted (5 s down) and an API worker killed. Every invariant of
``make soak`` must hold; the ten-minute run adds the daemon's kill (README "Chaos soak")."""

from __future__ import annotations

from pathlib import Path

from zqyy_assets.testing.soak.run import SoakSettings, run_soak

INVARIANTS = (
    "every event ended completed or failed with a reason",
    "no event ran twice",
    "the ledger equals the upstream: requests and tokens",
    "the budget was never exceeded by more than one call per process",
    "every cached answer validates against its schema",
    "the API never answered 500; 503 + Retry-After in the outage; recovered by itself",
    "every chat stream ended done or error; broken ones saved their partial reply",
    "realtime subscribers got every cache_updated after reconnecting with since",
    "repeated bad tokens from one client are slowed down",
    "expired and revoked tokens are refused on every path, realtime included",
    "no secret in any log line",
)


def test_a_short_soak_keeps_every_promise(tmp_path: Path) -> None:
    lines: list[str] = []
    settings = SoakSettings(
        minutes=0.75,
        rate=10,
        faults=("pg", "api"),
        pg_down_s=5,
        days=14,
        reads_per_s=5,
        chat_every_s=2,
        admin_event_every_s=10,
        drain_s=150,
        workdir=tmp_path,
        pg_name="soak-test",
    )
    result = run_soak(settings, say=lines.append)
    report = "\n".join(lines)
    assert [c.name for c in result.checks] == list(INVARIANTS), report
    assert [c.line() for c in result.checks if not c.ok] == [], report
    # It was a soak, not an idle run: events flowed, faults happened, clients were served.
    figures = result.figures
    assert figures["events"] >= 5 and figures["completed"] >= 1, report
    assert (figures["pg_restarts"], figures["api_kills"]) == (1, 1), report
    assert figures["chat_streams"] >= 5 and figures["pushes"] >= 1 and figures["upstream_requests"] >= 5, report
    assert result.summary.startswith("soak: 0.75 min, events ") and "lost 0, run twice 0, API 5xx 0" in result.summary
