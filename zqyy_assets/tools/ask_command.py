"""`zqyy ask APP --site S --target T [--force]`: one app, one target, through the configured provider.

    zqyy ask app3_clue --site 1 --target 100                # a member app: the member id
    zqyy ask app5_tactics --site 1 --target 7_100           # assistant x member: <assistant_id>_<member_id>
    zqyy ask app2_finance --site 1 --target 'all|this_month'         # app2: <area>|<time_dimension>
    zqyy ask app2a_finance_area --site 1 --target 'hallA|last_week'  # (or the cache id this_month__all)
    zqyy ask app6_note --site 1 --target 100 --force        # ask again even if memoization would answer

The answer goes through the pipeline's own path (``core/answering.py``: memoization, the call,
validation, the cache row) with the app's route the environment configures (DashScope when
DASHSCOPE_API_KEY is set, else the offline analyst; ZQYY_LLM_PROVIDER=openai for an
OpenAI-compatible model, per-app providers and models, the fallback; every ZQYY_LLM_* setting applies). The
validated answer, as cached, is printed on stdout as JSON; on stderr, the ledger line of each
call it took (biz.ai_call_ledger), or that memoization answered (no call), and the numbers the
answer cites that its prompt does not hold (``core/grounding``), if any. App8's clues are not
written to the member's retention clues (only a pipeline run does that). Exit 2 for an unknown
app, a site with no data, a malformed or unknown target or nothing to ask; 1 when the call failed.
The database is DATABASE_URL, else the embedded demo server.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, cast

from zqyy_assets.core import answering, cache, db, prompts
from zqyy_assets.core.answering import Ask, Outcome, RunInfo
from zqyy_assets.core.apps import APP2_AREA_APP, APP2_SITE_APP, APP_TYPES
from zqyy_assets.core.db import DictConnection
from zqyy_assets.core.grounding import ungrounded_line
from zqyy_assets.core.partition_keys import (
    AssistantMemberKey,
    MemberKey,
    parse_app2_key,
    partition_key_of,
)
from zqyy_assets.core.settings import GroundingSettings, VenueSettings
from zqyy_assets.core.tags import DEFAULT_TRIGGER

TARGET_FORMATS = (
    "member apps (app3_clue, app6_note, app7_customer, app8_consolidation): the member id, e.g. 100; "
    "assistant x member apps (app4_analysis, app5_tactics): <assistant_id>_<member_id>, e.g. 7_100; "
    "app2_finance / app2a_finance_area: <area>|<time_dimension>, e.g. 'all|this_month' "
    "(area all is app2_finance's, the others app2a's), or the cache id this_month__all"
)


class BadInput(Exception):
    """An app, site or target the command cannot ask about; the message names it."""


def build_ask(conn: DictConnection, app: str, site_id: int, target: str, *, tz: str) -> Ask:
    """The ask a pipeline run would make for this target, built by the same builders."""
    if app not in APP_TYPES:
        raise BadInput(f"unknown app {app!r}; known: {', '.join(APP_TYPES)}")
    site = conn.execute("SELECT is_active FROM ods.sites WHERE site_id = %s", (site_id,)).fetchone()
    if site is None:
        raise BadInput(f"site {site_id} has no data (not in ods.sites)")
    if not site["is_active"]:
        raise BadInput(f"site {site_id} is not an active site")
    refs = prompts.References()
    try:
        if app in (APP2_SITE_APP, APP2_AREA_APP):
            prompt, target_id = _app2_prompt(conn, app, site_id, target, refs)
        else:
            key = _target_key(app, site_id, target)
            prompt, target_id = prompts.target_builder(app, {})(conn, key, tz=tz, refs=refs), key.target_id
    except prompts.NothingToAsk as why:
        raise BadInput(f"nothing to ask {app} about target {target!r} at site {site_id}: {why}") from None
    return Ask(site_id, app, target_id, prompt, prompts.PROMPT_VERSIONS[app], references=refs.as_json())


def _app2_prompt(
    conn: DictConnection, app: str, site_id: int, target: str, refs: prompts.References
) -> tuple[dict[str, Any], str]:
    raw = partition_key_of(site_id, target) if "__" in target else target
    try:
        key = parse_app2_key(raw or target)
    except ValueError as exc:
        raise BadInput(f"bad target {target!r} for {app}: {exc}") from None
    if key.app_name != app:
        raise BadInput(f"target {target!r} (area {key.area}) is answered by {key.app_name}, not {app}")
    finance = prompts.load_site_finance(conn, site_id)
    if finance is None:
        raise BadInput(f"site {site_id} has no DWS finance figures")
    return prompts.build_app2_prompt(finance, key.time_dimension, key.area, refs=refs), key.target_id


def _target_key(app: str, site_id: int, target: str) -> MemberKey | AssistantMemberKey:
    if app in prompts.ASSISTANT_MEMBER_BUILDERS:
        assistant, sep, member = target.partition("_")
        if sep and assistant.isdigit() and member.isdigit():
            return AssistantMemberKey(site_id, int(assistant), int(member))
        raise BadInput(f"bad target {target!r} for {app}: expected <assistant_id>_<member_id>, e.g. 7_100")
    if target.isdigit():
        return MemberKey(site_id, int(target))
    raise BadInput(f"bad target {target!r} for {app}: expected a member id, e.g. 100")


def _ledger_rows(conn: DictConnection, ask: Ask, after_id: int) -> list[dict[str, Any]]:
    return conn.execute(
        """SELECT id, status, provider, model, tokens_in, tokens_out, cost_cny, latency_ms, error_code, fallback_for
           FROM biz.ai_call_ledger
           WHERE id > %s AND site_id = %s AND app_name = %s AND target_id = %s ORDER BY id""",
        (after_id, ask.site_id, ask.app_name, ask.target_id),
    ).fetchall()


def ledger_line(row: dict[str, Any]) -> str:
    cost = float(row["cost_cny"] or 0)
    latency = "-" if row["latency_ms"] is None else f"{row['latency_ms']} ms"
    error = f", error {row['error_code']}" if row["error_code"] else ""
    fallback = f" (fallback for {row['fallback_for']})" if row.get("fallback_for") else ""
    return (
        f"ledger #{row['id']}: {row['status']}{error}, provider {row['provider']}{fallback}, "
        f"model {row['model'] or '-'}, "
        f"tokens {row['tokens_in']} in / {row['tokens_out']} out, cost {cost:.6f} CNY, latency {latency}"
    )


def _memo_line(answer: cache.CachedAnswer) -> str:
    return (
        f"memoization answered: cached answer #{answer.id} of {answer.created_at:%Y-%m-%d %H:%M:%S %Z} "
        f"({answer.provider}, model {answer.model or '-'}) has the same input hash {answer.input_hash[:12]}; "
        "no call made (--force asks again)"
    )


def ask(app: str, site_id: int, target: str, *, force: bool, database_url: str) -> int:
    from zqyy_assets.core.llm.service import LLMService
    from zqyy_assets.core.llm.settings import load_settings

    with db.connect(database_url, autocommit=True) as conn:
        try:
            one = build_ask(conn, app, site_id, target, tz=VenueSettings().venue_timezone)
        except BadInput as exc:
            print(f"zqyy ask: {exc}", file=sys.stderr)
            return 2
        newest = conn.execute("SELECT coalesce(max(id), 0) AS id FROM biz.ai_call_ledger").fetchone()
        last_id = newest["id"] if newest else 0
        with LLMService(load_settings(database_url=database_url)) as service:
            run = RunInfo(
                provider=service.provider,
                trigger=DEFAULT_TRIGGER,
                force=force,
                dagster_run_id=None,
                blocking_apps=GroundingSettings().blocking_apps,
                routes=service.routes(),
            )
            # The service takes every keyword answering passes (site, target, run id, trigger, hash).
            llm = cast(answering.AnswerSource, service)
            [outcome] = answering.iter_answers(llm, database_url, [one], run, concurrency=1, prices=service.prices)
        calls = _ledger_rows(conn, one, last_id)
    return _report(outcome, calls)


def _report(outcome: Outcome, calls: list[dict[str, Any]]) -> int:
    if outcome.answer is not None:
        print(json.dumps(outcome.answer.result_json, ensure_ascii=False, indent=2))
    for row in calls:
        print(ledger_line(row), file=sys.stderr)
    if outcome.status == "hit":
        assert outcome.answer is not None
        print(_memo_line(outcome.answer), file=sys.stderr)
    elif outcome.answer is not None:
        print(f"cached as answer #{outcome.answer.id} (input hash {outcome.answer.input_hash[:12]})", file=sys.stderr)
        if line := ungrounded_line(outcome.answer):
            print(line, file=sys.stderr)
    else:
        print(f"zqyy ask: {outcome.app_name} {outcome.target_id} failed: {outcome.reason}", file=sys.stderr)
        return 1
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    from zqyy_assets.core.embedded_pg import app_database_url

    database_url = args.database_url or app_database_url()[0]
    return ask(args.app, args.site, args.target, force=args.force, database_url=database_url)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Adds `zqyy ask` to the project's CLI."""
    p = sub.add_parser(
        "ask",
        help="ask one app about one target now and print the answer and its ledger line",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("app", help=f"the app: {', '.join(APP_TYPES)}")
    p.add_argument("--site", type=int, required=True, help="the site id")
    p.add_argument("--target", required=True, help=TARGET_FORMATS)
    p.add_argument("--force", action="store_true", help="ask even when memoization has the answer")
    p.add_argument("--database-url", help="default: DATABASE_URL, else the embedded demo server")
    p.set_defaults(func=lambda a: sys.exit(cmd_ask(a)))
