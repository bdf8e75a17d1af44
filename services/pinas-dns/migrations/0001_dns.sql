-- The DNS role's own database (<state>/dns/dns.db): local records, conditional
-- forwarding, the switch, blocklists, allow/deny rules, the blocking switch, settings
-- saved from the API, and the query log. Only pinas-dns opens it; other roles ask its
-- control API.
CREATE TABLE dns_records (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL COLLATE NOCASE,
    type       TEXT NOT NULL CHECK (type IN ('A', 'AAAA', 'CNAME', 'PTR')),
    value      TEXT NOT NULL,
    ttl_secs   INTEGER NOT NULL DEFAULT 300,
    comment    TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX dns_records_name ON dns_records(name);

CREATE TABLE dns_forwards (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    domain     TEXT NOT NULL UNIQUE COLLATE NOCASE,
    server     TEXT NOT NULL,
    comment    TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE dns_switch (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    target     TEXT NOT NULL CHECK (target IN ('nas', 'companion')),
    reason     TEXT NOT NULL DEFAULT '',
    changed_at INTEGER NOT NULL
) STRICT;

CREATE TABLE dns_blocklists (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    url          TEXT NOT NULL UNIQUE,
    name         TEXT NOT NULL DEFAULT '',
    enabled      INTEGER NOT NULL DEFAULT 1,
    domains      INTEGER NOT NULL DEFAULT 0,
    bad_lines    INTEGER NOT NULL DEFAULT 0,
    updated_at   INTEGER,
    last_error   TEXT,
    created_at   INTEGER NOT NULL
) STRICT;

CREATE TABLE dns_rules (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL CHECK (kind IN ('allow', 'deny')),
    pattern    TEXT NOT NULL COLLATE NOCASE,
    comment    TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    UNIQUE (kind, pattern)
) STRICT;

CREATE TABLE dns_blocking (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    enabled    INTEGER NOT NULL,
    -- Unix milliseconds when blocking turns back on by itself; NULL: no timer.
    until_ms   INTEGER,
    changed_by TEXT NOT NULL DEFAULT '',
    reason     TEXT NOT NULL DEFAULT '',
    changed_at INTEGER NOT NULL
) STRICT;

CREATE TABLE dns_settings (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    -- JSON: upstreams, cache limits, blocking mode, query-log retention, allowed
    -- networks, rate limit.
    settings   TEXT NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE dns_query_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    ts_ms       INTEGER NOT NULL,
    client      TEXT NOT NULL,
    name        TEXT NOT NULL,
    qtype       TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('forwarded', 'cached', 'blocked', 'local', 'error')),
    rcode       TEXT NOT NULL,
    -- What the answer held, in Pi-hole's terms: IP, CNAME, DOMAIN, NODATA, NXDOMAIN,
    -- SERVFAIL, REFUSED, NOTIMP, OTHER.
    reply       TEXT NOT NULL DEFAULT 'OTHER',
    upstream    TEXT,
    duration_us INTEGER NOT NULL
) STRICT;
CREATE INDEX dns_query_log_ts ON dns_query_log(ts_ms);
