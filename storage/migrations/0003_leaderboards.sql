-- Leaderboards. The owning shard ranks in memory; these tables are its write-behind copy, read
-- back when the board is first touched after a start. No foreign key to players: scripts submit
-- for bots and players that were never stored (as match_record_players).

-- The current period's entries, one per player per board.
CREATE TABLE leaderboard_entries (
    board_id TEXT NOT NULL,
    player_id TEXT NOT NULL,
    score BIGINT NOT NULL,
    sub_score BIGINT NOT NULL,
    -- Submission order when the score last changed: breaks full ties the same way after a restart.
    seq BIGINT NOT NULL,
    metadata TEXT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (board_id, player_id)
);

-- Where each board's current period started (absent: it never reset).
CREATE TABLE leaderboard_periods (
    board_id TEXT PRIMARY KEY,
    period_start BIGINT NOT NULL
);

-- Ended periods, with the rank each entry finished on.
CREATE TABLE leaderboard_archive (
    board_id TEXT NOT NULL,
    period_start BIGINT NOT NULL,
    player_id TEXT NOT NULL,
    rank BIGINT NOT NULL,
    score BIGINT NOT NULL,
    sub_score BIGINT NOT NULL,
    metadata TEXT,
    updated_at BIGINT NOT NULL,
    archived_at BIGINT NOT NULL,
    PRIMARY KEY (board_id, period_start, player_id)
);
CREATE INDEX leaderboard_archive_rank ON leaderboard_archive (board_id, period_start, rank);
