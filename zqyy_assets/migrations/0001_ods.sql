-- ODS: source tables as the venue's POS connector delivers them. Money in yuan, to the cent.
CREATE SCHEMA IF NOT EXISTS ods;

CREATE TABLE ods.sites (
    site_id     bigint PRIMARY KEY,
    name        text NOT NULL,
    city        text NOT NULL DEFAULT '',
    opened_on   date,
    is_active   boolean NOT NULL DEFAULT true
);

-- The seven physical areas; 'hall' (hallA+B+C) and 'all' are aggregates, never rows here.
CREATE TABLE ods.areas (
    site_id     bigint NOT NULL REFERENCES ods.sites,
    area_code   text NOT NULL CHECK (area_code IN ('hallA','hallB','hallC','vip','snooker','mahjong','ktv')),
    name        text NOT NULL,
    PRIMARY KEY (site_id, area_code)
);

CREATE TABLE ods.tables (
    site_id          bigint NOT NULL,
    table_id         bigint NOT NULL,
    area_code        text NOT NULL,
    name             text NOT NULL,
    price_per_minute numeric(8,2) NOT NULL CHECK (price_per_minute >= 0),
    PRIMARY KEY (site_id, table_id),
    FOREIGN KEY (site_id, area_code) REFERENCES ods.areas
);

CREATE TABLE ods.members (
    site_id       bigint NOT NULL REFERENCES ods.sites,
    member_id     bigint NOT NULL,
    name          text NOT NULL,
    phone         text NOT NULL DEFAULT '',
    gender        text NOT NULL DEFAULT '',
    level         text NOT NULL DEFAULT '普通',
    registered_at timestamptz NOT NULL,
    PRIMARY KEY (site_id, member_id)
);

CREATE TABLE ods.assistants (
    site_id         bigint NOT NULL REFERENCES ods.sites,
    assistant_id    bigint NOT NULL,
    name            text NOT NULL,
    level           text NOT NULL DEFAULT '初级',
    fee_per_minute  numeric(8,2) NOT NULL CHECK (fee_per_minute >= 0),
    hired_on        date,
    is_active       boolean NOT NULL DEFAULT true,
    PRIMARY KEY (site_id, assistant_id)
);

-- One customer visit paid at the till. total = table_fee + assistant_fee + goods_amount - discount.
CREATE TABLE ods.settlements (
    site_id        bigint NOT NULL REFERENCES ods.sites,
    settlement_id  bigint NOT NULL,
    member_id      bigint,
    area_code      text NOT NULL,
    table_id       bigint NOT NULL,
    started_at     timestamptz NOT NULL,
    ended_at       timestamptz NOT NULL,
    settled_at     timestamptz NOT NULL,
    table_minutes  integer NOT NULL CHECK (table_minutes >= 0),
    table_fee      numeric(12,2) NOT NULL CHECK (table_fee >= 0),
    assistant_fee  numeric(12,2) NOT NULL DEFAULT 0 CHECK (assistant_fee >= 0),
    goods_amount   numeric(12,2) NOT NULL DEFAULT 0 CHECK (goods_amount >= 0),
    discount       numeric(12,2) NOT NULL DEFAULT 0 CHECK (discount >= 0),
    total          numeric(12,2) NOT NULL,
    pay_method     text NOT NULL,
    PRIMARY KEY (site_id, settlement_id),
    FOREIGN KEY (site_id, area_code) REFERENCES ods.areas,
    FOREIGN KEY (site_id, table_id) REFERENCES ods.tables,
    FOREIGN KEY (site_id, member_id) REFERENCES ods.members,
    CHECK (ended_at >= started_at)
);
CREATE INDEX settlements_site_settled_idx ON ods.settlements (site_id, settled_at);
CREATE INDEX settlements_member_idx ON ods.settlements (site_id, member_id, settled_at);

-- An assistant accompanying or coaching during a settlement.
CREATE TABLE ods.assistant_services (
    site_id        bigint NOT NULL,
    service_id     bigint NOT NULL,
    settlement_id  bigint NOT NULL,
    assistant_id   bigint NOT NULL,
    member_id      bigint,
    started_at     timestamptz NOT NULL,
    ended_at       timestamptz NOT NULL,
    minutes        integer NOT NULL CHECK (minutes >= 0),
    fee            numeric(12,2) NOT NULL CHECK (fee >= 0),
    PRIMARY KEY (site_id, service_id),
    FOREIGN KEY (site_id, settlement_id) REFERENCES ods.settlements,
    FOREIGN KEY (site_id, assistant_id) REFERENCES ods.assistants,
    FOREIGN KEY (site_id, member_id) REFERENCES ods.members
);
CREATE INDEX assistant_services_pair_idx ON ods.assistant_services (site_id, assistant_id, member_id);

CREATE TABLE ods.recharges (
    site_id       bigint NOT NULL,
    recharge_id   bigint NOT NULL,
    member_id     bigint NOT NULL,
    amount        numeric(12,2) NOT NULL CHECK (amount > 0),
    bonus         numeric(12,2) NOT NULL DEFAULT 0 CHECK (bonus >= 0),
    pay_method    text NOT NULL,
    recharged_at  timestamptz NOT NULL,
    PRIMARY KEY (site_id, recharge_id),
    FOREIGN KEY (site_id, member_id) REFERENCES ods.members
);
CREATE INDEX recharges_site_time_idx ON ods.recharges (site_id, recharged_at);

CREATE TABLE ods.notes (
    site_id       bigint NOT NULL,
    note_id       bigint NOT NULL,
    member_id     bigint NOT NULL,
    assistant_id  bigint,
    content       text NOT NULL CHECK (content <> ''),
    created_at    timestamptz NOT NULL,
    PRIMARY KEY (site_id, note_id),
    FOREIGN KEY (site_id, member_id) REFERENCES ods.members,
    FOREIGN KEY (site_id, assistant_id) REFERENCES ods.assistants
);
CREATE INDEX notes_member_idx ON ods.notes (site_id, member_id, created_at);

CREATE TABLE ods.tasks (
    site_id       bigint NOT NULL,
    task_id       bigint NOT NULL,
    member_id     bigint NOT NULL,
    assistant_id  bigint NOT NULL,
    task_type     text NOT NULL CHECK (task_type IN ('回访','召回')),
    status        text NOT NULL DEFAULT 'assigned' CHECK (status IN ('assigned','done','cancelled')),
    assigned_at   timestamptz NOT NULL,
    due_at        timestamptz,
    completed_at  timestamptz,
    PRIMARY KEY (site_id, task_id),
    FOREIGN KEY (site_id, member_id) REFERENCES ods.members,
    FOREIGN KEY (site_id, assistant_id) REFERENCES ods.assistants
);
