-- DNS: the blocking switch (on, or off until a time), settings saved from the API (they
-- take precedence over [dns] in config.toml), and the Pi-hole v5 API token. Owned by
-- pinas-dns.
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
    -- JSON: upstreams, cache limits, blocking mode, query-log retention.
    settings   TEXT NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE dns_pihole_token (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    token      TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
