-- The power role's own database: <state_dir>/power/power.db.

-- Settings saved through the API (one row); absent until an admin saves them, when
-- [power] in config.toml gives the defaults.
CREATE TABLE settings (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    json TEXT NOT NULL,
    saved_at_ms INTEGER NOT NULL
);

-- The plugs. Their Tapo accounts are not here: they live in credentials.json (0600).
CREATE TABLE plugs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    -- host or host:port
    address TEXT NOT NULL UNIQUE,
    is_nas INTEGER NOT NULL DEFAULT 0 CHECK (is_nas IN (0, 1)),
    -- whether an admin may switch it on and off from PiNAS
    switchable INTEGER NOT NULL DEFAULT 0 CHECK (switchable IN (0, 1)),
    created_at_ms INTEGER NOT NULL
);
-- At most one plug is the NAS's.
CREATE UNIQUE INDEX plugs_one_nas ON plugs (is_nas) WHERE is_nas = 1;

-- Every sample: power (W), the plug's counters (Wh) and PiNAS's running total (Wh),
-- which never goes backwards across the plug's resets.
CREATE TABLE samples (
    plug_id INTEGER NOT NULL REFERENCES plugs (id) ON DELETE CASCADE,
    at_ms INTEGER NOT NULL,
    power_w REAL NOT NULL,
    today_wh INTEGER NOT NULL,
    month_wh INTEGER NOT NULL,
    total_wh INTEGER NOT NULL,
    PRIMARY KEY (plug_id, at_ms)
) WITHOUT ROWID;

-- Means of the samples per minute and per hour (at_ms: the period's start): mean,
-- lowest and highest power, how many samples, seconds at or above the NAS threshold
-- (active), seconds between the standby level and the threshold (standby), and the
-- running total at the period's last sample.
CREATE TABLE minutes (
    plug_id INTEGER NOT NULL REFERENCES plugs (id) ON DELETE CASCADE,
    at_ms INTEGER NOT NULL,
    mean_w REAL NOT NULL,
    min_w REAL NOT NULL,
    max_w REAL NOT NULL,
    samples INTEGER NOT NULL,
    active_secs INTEGER NOT NULL,
    standby_secs INTEGER NOT NULL,
    total_wh INTEGER NOT NULL,
    PRIMARY KEY (plug_id, at_ms)
) WITHOUT ROWID;

CREATE TABLE hours (
    plug_id INTEGER NOT NULL REFERENCES plugs (id) ON DELETE CASCADE,
    at_ms INTEGER NOT NULL,
    mean_w REAL NOT NULL,
    min_w REAL NOT NULL,
    max_w REAL NOT NULL,
    samples INTEGER NOT NULL,
    active_secs INTEGER NOT NULL,
    standby_secs INTEGER NOT NULL,
    total_wh INTEGER NOT NULL,
    PRIMARY KEY (plug_id, at_ms)
) WITHOUT ROWID;

-- Times a plug did not answer: from its last sample (or the first failure) to the next
-- sample; end_ms NULL while it lasts. Never filled in with made-up samples.
CREATE TABLE gaps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    plug_id INTEGER NOT NULL REFERENCES plugs (id) ON DELETE CASCADE,
    start_ms INTEGER NOT NULL,
    end_ms INTEGER,
    reason TEXT NOT NULL
);
CREATE INDEX gaps_plug ON gaps (plug_id, start_ms);

-- How far each rollup got ('minutes', 'hours'): every period before is done.
CREATE TABLE rollups (
    level TEXT PRIMARY KEY,
    done_until_ms INTEGER NOT NULL
);
