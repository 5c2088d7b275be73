"""Demo venue generator: realistic ODS data for N sites x D business days, loaded with COPY.

What it simulates, per site (each site has its own random streams derived from the seed):

- seven areas and ~70 tables whose per-minute price depends on the area (VIP, KTV and snooker
  cost more than the main hall) and a little on the site and the table;
- members in segments: loyal (several visits a week), regular, occasional, churning (regular,
  then fading out over a few weeks, some of them won back by a 召回 task) and dormant; new
  members join every day (they register at the till on their first visit);
- walk-in customers (no member id), evening peaks (visits start 10:00-04:59, most 14:00-02:00,
  peaking 20:00-23:00; afternoons busier at weekends), weekend bumps and a fixed table of
  Chinese public holidays (``HOLIDAYS``);
- tables are really occupied: a visit takes a free table in its area (or another hall area),
  or waits for one, or leaves when the wait runs past closing time;
- assistants with weekly rosters who accompany a share of visits (more in VIP, KTV and
  snooker), regulars asking for "their" assistant, assistant_fee = minutes x fee_per_minute;
- goods and drinks, member discounts by card level, coupons for walk-ins, pay methods
  (微信, 支付宝, 会员卡, 现金; cash is rounded down to the yuan), stored-value recharges with
  bonus (at registration, or when the card balance runs short) and card levels that follow
  the amount recharged;
- notes in Chinese written by assistants (and sometimes the front desk) about members, from
  varied templates that agree with the member (favourite area, drink, birthday, fading visits);
- tasks: 回访 after a new member's first visit or a big bill, 召回 for regulars absent for
  three weeks; their status as of the end of the last generated business day.

Every visit ends before 06:00 (the venue closes at the business-date cut-off), so each
settlement's business date (``dws.business_date(settled_at, 'Asia/Shanghai', 6)``) is the day it
was generated for, even when the visit crosses midnight.

Ids are site-prefixed (``site_id * 100_000_000 + n``) so rows of two sites never share an id.
A site's rows depend only on (seed, site id, days, end date): the same arguments give identical
rows, and regenerating one site of several reproduces it exactly.

Loading: one transaction per run, COPY only. The static tables go first, then the daily tables
stream in chunks from a loader thread while the simulation continues; members' card levels
(which follow the recharges of the whole run) are set by one UPDATE at the end. Existing site
ids are refused unless ``replace=True``. Bulk loads write no business events.
"""

from zqyy_assets.tools.demo_venue.generate import SitesExistError, delete_sites, generate_demo_venue
from zqyy_assets.tools.demo_venue.holidays import HOLIDAYS, Holiday, day_factor, holiday
from zqyy_assets.tools.demo_venue.site import ID_BLOCK

__all__ = [
    "HOLIDAYS",
    "ID_BLOCK",
    "Holiday",
    "SitesExistError",
    "day_factor",
    "delete_sites",
    "generate_demo_venue",
    "holiday",
]
