-- The companion role's own database: <state_dir>/companion/companion.db.

-- Settings saved through the API (one row); absent until an admin saves them, when
-- [companion] in config.toml gives the defaults.
CREATE TABLE settings (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    json TEXT NOT NULL,
    saved_at_ms INTEGER NOT NULL
);

-- Every transition of the NAS's state machine; the last row is the current state.
CREATE TABLE nas_states (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    state TEXT NOT NULL CHECK (state IN
        ('online', 'going_offline', 'offline', 'waking', 'coming_online', 'unreachable')),
    reason TEXT NOT NULL,
    at_ms INTEGER NOT NULL
);
CREATE INDEX nas_states_at ON nas_states (at_ms);

-- The NAS's last metadata snapshot (one row), replaced whole.
CREATE TABLE snapshot (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    schema_version INTEGER NOT NULL,
    body TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    received_at_ms INTEGER NOT NULL
);
