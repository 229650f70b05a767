-- The ops plane. Portable SQL (SQLite and PostgreSQL).

-- Players an operator banned: login and session.connect refuse them until the row is removed.
-- No foreign key, so a ban outlives an erasure of the account it names.
CREATE TABLE player_bans (
    player_id TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    banned_by TEXT NOT NULL,
    banned_at BIGINT NOT NULL
);

-- Append-only record of every operator mutation (asobi's ops_audit_entries, narrowed to the
-- columns asobi-rs fills). Nothing cascades into it.
CREATE TABLE ops_audit_entries (
    id TEXT PRIMARY KEY,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target_id TEXT,
    outcome TEXT NOT NULL,
    details TEXT NOT NULL,
    occurred_at BIGINT NOT NULL
);
CREATE INDEX ops_audit_entries_target ON ops_audit_entries (target_id);
CREATE INDEX ops_audit_entries_action ON ops_audit_entries (action, occurred_at);
