-- Tournaments and seasons. A tournament ranks its entrants on a leaderboard between start_at
-- and end_at; at the end the owning shard pays its rewards through the economy ledger, in the
-- same transaction that marks it settled, under one idempotency key per player
-- (`tournament:<id>:payout`), so a payout is never lost or doubled across a restart.
-- Times are unix milliseconds, as everywhere in this schema.

CREATE TABLE tournaments (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    leaderboard_id TEXT NOT NULL,
    -- NULL: no cap.
    max_entries BIGINT,
    -- JSON: {} or {"currency": "gold", "amount": 100}.
    entry_fee TEXT NOT NULL DEFAULT '{}',
    -- JSON: [] or [{"from": 1, "to": 1, "currency": "gold", "amount": 500}, ...].
    rewards TEXT NOT NULL DEFAULT '[]',
    -- pending | active | finished | cancelled (asobi's values).
    status TEXT NOT NULL DEFAULT 'pending',
    start_at BIGINT NOT NULL,
    end_at BIGINT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    inserted_at BIGINT NOT NULL,
    -- When the payouts were made (NULL until then).
    settled_at BIGINT
);
CREATE INDEX tournaments_status ON tournaments (status);
CREATE INDEX tournaments_start ON tournaments (start_at);

CREATE TABLE tournament_entries (
    tournament_id TEXT NOT NULL REFERENCES tournaments (id),
    player_id TEXT NOT NULL,
    joined_at BIGINT NOT NULL,
    -- Final placement among entrants and what it paid (NULL until settled).
    final_rank BIGINT,
    final_score BIGINT,
    PRIMARY KEY (tournament_id, player_id)
);

-- Seasons: a window that ends by resetting the boards it names and paying rewards by rank.
CREATE TABLE seasons (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    -- JSON array of board ids.
    boards TEXT NOT NULL,
    rewards TEXT NOT NULL DEFAULT '[]',
    start_at BIGINT NOT NULL,
    end_at BIGINT NOT NULL,
    inserted_at BIGINT NOT NULL,
    settled_at BIGINT
);
