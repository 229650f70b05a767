-- Resolved votes (asobi's `votes` table): written once when a vote closes, read by the vote
-- history routes. JSON columns are text, times unix milliseconds, as in the other tables. No
-- foreign key to match_records: a vote is stored while its match is still running.
CREATE TABLE votes (
    id TEXT PRIMARY KEY,
    match_id TEXT NOT NULL,
    template TEXT NOT NULL,
    method TEXT NOT NULL,
    -- "live" or "hidden": hidden votes' per-voter ballots are not served.
    visibility TEXT NOT NULL,
    options TEXT NOT NULL,
    votes_cast TEXT NOT NULL,
    result TEXT NOT NULL,
    distribution TEXT NOT NULL,
    turnout DOUBLE PRECISION NOT NULL,
    eligible_count BIGINT NOT NULL,
    window_ms BIGINT NOT NULL,
    opened_at BIGINT NOT NULL,
    closed_at BIGINT NOT NULL,
    inserted_at BIGINT NOT NULL
);
CREATE INDEX votes_by_match ON votes (match_id, inserted_at);
CREATE INDEX votes_by_template ON votes (template);
