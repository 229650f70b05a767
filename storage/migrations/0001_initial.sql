-- Portable SQL: runs unchanged on SQLite and PostgreSQL. Ids, names and JSON are TEXT,
-- times are BIGINT unix milliseconds.

CREATE TABLE players (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    -- Lower-cased username; its unique index gives case-insensitive uniqueness on both engines.
    -- NULL once the player is erased, so an erased account never holds a name hostage
    -- (both engines let a unique index contain many NULLs).
    username_lower TEXT,
    display_name TEXT,
    avatar_url TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    is_guest BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    erased_at BIGINT
);
CREATE UNIQUE INDEX players_username_lower_key ON players (username_lower);

-- Kept apart from the profile so profile reads never carry a password hash.
CREATE TABLE player_credentials (
    player_id TEXT PRIMARY KEY REFERENCES players (id),
    password_hash TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE guest_devices (
    device_id TEXT PRIMARY KEY,
    player_id TEXT NOT NULL REFERENCES players (id),
    verifier TEXT NOT NULL,
    revoked BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL
);
CREATE INDEX guest_devices_player_id ON guest_devices (player_id);

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    player_id TEXT NOT NULL REFERENCES players (id),
    family_id TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    used_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX refresh_tokens_family_id ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_player_id ON refresh_tokens (player_id);

CREATE TABLE match_records (
    id TEXT PRIMARY KEY,
    mode TEXT NOT NULL,
    status TEXT NOT NULL,
    -- JSON array of player ids in roster order; match_record_players indexes it for filtering.
    players TEXT NOT NULL,
    result TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT NOT NULL
);
CREATE INDEX match_records_recent ON match_records (finished_at DESC, id DESC);
CREATE INDEX match_records_mode_recent ON match_records (mode, finished_at DESC, id DESC);

-- No foreign key to players: rosters may include bots and players that were never stored.
CREATE TABLE match_record_players (
    match_id TEXT NOT NULL REFERENCES match_records (id),
    player_id TEXT NOT NULL,
    PRIMARY KEY (match_id, player_id)
);
CREATE INDEX match_record_players_player_id ON match_record_players (player_id);
