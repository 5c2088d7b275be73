"""Resources shared by every domain: the project's database and the venue's calendar."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from zqyy_assets.core import db
from zqyy_assets.core.business_date import DEFAULT_CUTOFF_HOURS, DEFAULT_TIMEZONE


class PostgresResource(dg.ConfigurableResource):
    """The project's PostgreSQL database (ODS, DWS and biz schemas)."""

    database_url: str

    def connect(self, *, autocommit: bool = False) -> db.DictConnection:
        return db.connect(self.database_url, autocommit=autocommit)

    @contextmanager
    def transaction(self) -> Iterator[db.DictConnection]:
        with db.transaction(self.database_url) as conn:
            yield conn


class VenueCalendarResource(dg.ConfigurableResource):
    """How a venue's business date is cut: its timezone and the hour the day turns over."""

    timezone: str = DEFAULT_TIMEZONE
    business_day_cutoff_hours: int = DEFAULT_CUTOFF_HOURS
