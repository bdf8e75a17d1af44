-- NAS: remembered mounts and shares.
CREATE TABLE mounts (
    uuid        TEXT PRIMARY KEY,
    mount_point TEXT NOT NULL UNIQUE,
    fs_type     TEXT NOT NULL,
    label       TEXT
) STRICT;

CREATE TABLE shares (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL UNIQUE COLLATE NOCASE,
    path        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    read_only   INTEGER NOT NULL DEFAULT 0,
    guest_ok    INTEGER NOT NULL DEFAULT 0,
    valid_users TEXT NOT NULL DEFAULT '[]',
    smb         INTEGER NOT NULL DEFAULT 1,
    nfs         INTEGER NOT NULL DEFAULT 0,
    nfs_clients TEXT NOT NULL DEFAULT '[]',
    created_at  INTEGER NOT NULL
) STRICT;
