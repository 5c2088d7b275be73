"""The ODS tables, defined once: their names, Chinese labels and column specs.

The CSV import / export (:mod:`zqyy_assets.tools.csv_io`), the demo venue generator
(:mod:`zqyy_assets.tools.demo_venue`) and the Dagster external assets (``defs/ods``) all read
the tables from here. The specs mirror migration ``0001_ods.sql``: kinds, required columns,
defaults, allowed codes, primary keys and references.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from zqyy_assets.core.vocabulary import AREAS, WHOLE_SITE

ColumnKind = Literal["int", "int4", "text", "money", "timestamp", "date", "bool"]


@dataclass(frozen=True)
class Column:
    name: str
    kind: ColumnKind
    required: bool = True  # must appear in the header and may not be empty
    default: str | None = None  # value for an absent column / empty cell of an optional NOT NULL column
    choices: tuple[str, ...] | None = None
    positive: bool = False  # money that must be > 0 (otherwise >= 0)
    max_cents: int = 10**12  # numeric(12,2); numeric(8,2) columns say 10**8


@dataclass(frozen=True)
class Ref:
    columns: tuple[str, ...]  # in this table; the last one is the column named in errors
    parent: str
    parent_columns: tuple[str, ...]


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    refs: tuple[Ref, ...]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


# The areas a venue row may name: the vocabulary's areas without its two aggregates.
AREA_CODES: tuple[str, ...] = tuple(a for a in AREAS if a not in (WHOLE_SITE, "hall"))

_SITE_REF = Ref(("site_id",), "sites", ("site_id",))


def _member_ref(col: str = "member_id") -> Ref:
    return Ref(("site_id", col), "members", ("site_id", "member_id"))


def _assistant_ref(col: str = "assistant_id") -> Ref:
    return Ref(("site_id", col), "assistants", ("site_id", "assistant_id"))


# In foreign-key order: a table only references tables before it.
TABLE_SPECS: tuple[TableSpec, ...] = (
    TableSpec(
        "sites",
        (
            Column("site_id", "int"),
            Column("name", "text"),
            Column("city", "text", required=False, default=""),
            Column("opened_on", "date", required=False),
            Column("is_active", "bool", required=False, default="true"),
        ),
        ("site_id",),
        (),
    ),
    TableSpec(
        "areas",
        (
            Column("site_id", "int"),
            Column("area_code", "text", choices=AREA_CODES),
            Column("name", "text"),
        ),
        ("site_id", "area_code"),
        (_SITE_REF,),
    ),
    TableSpec(
        "tables",
        (
            Column("site_id", "int"),
            Column("table_id", "int"),
            Column("area_code", "text", choices=AREA_CODES),
            Column("name", "text"),
            Column("price_per_minute", "money", max_cents=10**8),
        ),
        ("site_id", "table_id"),
        (_SITE_REF, Ref(("site_id", "area_code"), "areas", ("site_id", "area_code"))),
    ),
    TableSpec(
        "members",
        (
            Column("site_id", "int"),
            Column("member_id", "int"),
            Column("name", "text"),
            Column("phone", "text", required=False, default=""),
            Column("gender", "text", required=False, default=""),
            Column("level", "text", required=False, default="普通"),
            Column("registered_at", "timestamp"),
        ),
        ("site_id", "member_id"),
        (_SITE_REF,),
    ),
    TableSpec(
        "assistants",
        (
            Column("site_id", "int"),
            Column("assistant_id", "int"),
            Column("name", "text"),
            Column("level", "text", required=False, default="初级"),
            Column("fee_per_minute", "money", max_cents=10**8),
            Column("hired_on", "date", required=False),
            Column("is_active", "bool", required=False, default="true"),
        ),
        ("site_id", "assistant_id"),
        (_SITE_REF,),
    ),
    TableSpec(
        "settlements",
        (
            Column("site_id", "int"),
            Column("settlement_id", "int"),
            Column("member_id", "int", required=False),
            Column("area_code", "text", choices=AREA_CODES),
            Column("table_id", "int"),
            Column("started_at", "timestamp"),
            Column("ended_at", "timestamp"),
            Column("settled_at", "timestamp"),
            Column("table_minutes", "int4"),
            Column("table_fee", "money"),
            Column("assistant_fee", "money", required=False, default="0"),
            Column("goods_amount", "money", required=False, default="0"),
            Column("discount", "money", required=False, default="0"),
            Column("total", "money"),
            Column("pay_method", "text"),
        ),
        ("site_id", "settlement_id"),
        (
            _SITE_REF,
            Ref(("site_id", "area_code"), "areas", ("site_id", "area_code")),
            Ref(("site_id", "table_id"), "tables", ("site_id", "table_id")),
            _member_ref(),
        ),
    ),
    TableSpec(
        "assistant_services",
        (
            Column("site_id", "int"),
            Column("service_id", "int"),
            Column("settlement_id", "int"),
            Column("assistant_id", "int"),
            Column("member_id", "int", required=False),
            Column("started_at", "timestamp"),
            Column("ended_at", "timestamp"),
            Column("minutes", "int4"),
            Column("fee", "money"),
        ),
        ("site_id", "service_id"),
        (
            _SITE_REF,
            Ref(("site_id", "settlement_id"), "settlements", ("site_id", "settlement_id")),
            _assistant_ref(),
            _member_ref(),
        ),
    ),
    TableSpec(
        "recharges",
        (
            Column("site_id", "int"),
            Column("recharge_id", "int"),
            Column("member_id", "int"),
            Column("amount", "money", positive=True),
            Column("bonus", "money", required=False, default="0"),
            Column("pay_method", "text"),
            Column("recharged_at", "timestamp"),
        ),
        ("site_id", "recharge_id"),
        (_SITE_REF, _member_ref()),
    ),
    TableSpec(
        "notes",
        (
            Column("site_id", "int"),
            Column("note_id", "int"),
            Column("member_id", "int"),
            Column("assistant_id", "int", required=False),
            Column("content", "text"),
            Column("created_at", "timestamp"),
        ),
        ("site_id", "note_id"),
        (_SITE_REF, _member_ref(), _assistant_ref()),
    ),
    TableSpec(
        "tasks",
        (
            Column("site_id", "int"),
            Column("task_id", "int"),
            Column("member_id", "int"),
            Column("assistant_id", "int"),
            Column("task_type", "text", choices=("回访", "召回")),
            Column("status", "text", required=False, default="assigned", choices=("assigned", "done", "cancelled")),
            Column("assigned_at", "timestamp"),
            Column("due_at", "timestamp", required=False),
            Column("completed_at", "timestamp", required=False),
        ),
        ("site_id", "task_id"),
        (_SITE_REF, _member_ref(), _assistant_ref()),
    ),
)

SPECS: dict[str, TableSpec] = {s.name: s for s in TABLE_SPECS}
ODS_TABLES: tuple[str, ...] = tuple(SPECS)  # foreign-key order

# What venue staff call each table (shown in the Dagster UI).
ODS_TABLE_LABELS: dict[str, str] = {
    "sites": "门店",
    "areas": "区域",
    "tables": "球台",
    "members": "会员",
    "assistants": "助教",
    "settlements": "结算单",
    "assistant_services": "助教服务",
    "recharges": "储值",
    "notes": "备注",
    "tasks": "任务",
}


def money_text(cents: int) -> str:
    """Cents as the decimal text Postgres and the CSV files use (``1250`` -> ``12.50``)."""
    return f"{cents // 100}.{cents % 100:02d}"
