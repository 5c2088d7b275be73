-- DWS: figures computed from ODS by the Dagster DWS assets.
CREATE SCHEMA IF NOT EXISTS dws;

-- A venue's day runs past midnight: a moment belongs to the business date of
-- (local time - cutoff hours). The timezone and cutoff are settings passed by the caller.
CREATE FUNCTION dws.business_date(ts timestamptz, tz text, cutoff_hours integer)
RETURNS date LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT ((ts AT TIME ZONE tz) - make_interval(hours => cutoff_hours))::date $$;

-- One row per site x area x business date; area 'all' is the whole site (and the only
-- row carrying recharges, which belong to no area). 'hall' is summed from hallA/B/C on read.
CREATE TABLE dws.finance_area_daily (
    site_id          bigint NOT NULL,
    biz_date         date NOT NULL,
    area_code        text NOT NULL,
    revenue          numeric(14,2) NOT NULL,
    table_fee        numeric(14,2) NOT NULL,
    assistant_fee    numeric(14,2) NOT NULL,
    goods_amount     numeric(14,2) NOT NULL,
    discount         numeric(14,2) NOT NULL,
    orders           integer NOT NULL,
    table_minutes    bigint NOT NULL,
    table_hours      numeric(12,2) GENERATED ALWAYS AS (round(table_minutes / 60.0, 2)) STORED,
    member_revenue   numeric(14,2) NOT NULL,
    member_orders    integer NOT NULL,
    member_share     numeric(6,4) GENERATED ALWAYS AS
                       (CASE WHEN revenue > 0 THEN round(member_revenue / revenue, 4) ELSE 0 END) STORED,
    recharge_amount  numeric(14,2) NOT NULL DEFAULT 0,
    recharge_count   integer NOT NULL DEFAULT 0,
    computed_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site_id, biz_date, area_code)
);
CREATE INDEX finance_area_daily_date_idx ON dws.finance_area_daily (biz_date);

-- One row per member as of the site's latest business date with data.
CREATE TABLE dws.member_profile (
    site_id                 bigint NOT NULL,
    member_id               bigint NOT NULL,
    as_of_date              date NOT NULL,
    first_visit_at          timestamptz,
    last_visit_at           timestamptz,
    recency_days            integer,
    visits_30d              integer NOT NULL,
    visits_90d              integer NOT NULL,
    visits_180d             integer NOT NULL,
    spend_30d               numeric(14,2) NOT NULL,
    spend_90d               numeric(14,2) NOT NULL,
    spend_180d              numeric(14,2) NOT NULL,
    spend_prev_30d          numeric(14,2) NOT NULL,
    spend_trend             text NOT NULL CHECK (spend_trend IN ('up','down','flat','new','inactive')),
    recharge_180d           numeric(14,2) NOT NULL,
    favourite_area          text,
    favourite_time_slot     text,
    favourite_assistant_id  bigint,
    computed_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site_id, member_id)
);

CREATE TABLE dws.assistant_member (
    site_id           bigint NOT NULL,
    assistant_id      bigint NOT NULL,
    member_id         bigint NOT NULL,
    services          integer NOT NULL,
    minutes           bigint NOT NULL,
    fees              numeric(14,2) NOT NULL,
    first_service_at  timestamptz NOT NULL,
    last_service_at   timestamptz NOT NULL,
    computed_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site_id, assistant_id, member_id)
);
