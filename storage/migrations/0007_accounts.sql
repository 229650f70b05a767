-- Accounts and abuse controls: bans, access-token revocation, sign-in identities (OIDC and
-- Steam), spent Steam tickets and the audit of account-lifecycle actions.
-- Portable SQL (SQLite and PostgreSQL); times are BIGINT unix milliseconds.

-- When an operator banned the player; NULL for a player in good standing.
ALTER TABLE players ADD COLUMN banned_at BIGINT;

-- When the device last resumed its guest (NULL: never since it was created); the guest reaper
-- deletes unclaimed guests not seen for `ASOBI_GUEST_REAP_AFTER`.
ALTER TABLE guest_devices ADD COLUMN last_seen BIGINT;

-- Access tokens issued at or before `not_before` are dead (ban, erase, password change). No
-- foreign key: the row must outlive an erased player, whose tokens are still unexpired.
CREATE TABLE access_revocations (
    player_id TEXT PRIMARY KEY,
    not_before BIGINT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX access_revocations_recent ON access_revocations (not_before);

-- Single access tokens ended by logout, kept until they would have expired anyway.
CREATE TABLE revoked_access_tokens (
    token_id TEXT PRIMARY KEY,
    player_id TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX revoked_access_tokens_expiry ON revoked_access_tokens (expires_at);

-- A provider account (Google, Apple, Microsoft, Discord, Steam) linked to a player.
CREATE TABLE player_identities (
    provider TEXT NOT NULL,
    provider_uid TEXT NOT NULL,
    player_id TEXT NOT NULL REFERENCES players (id),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (provider, provider_uid)
);
CREATE UNIQUE INDEX player_identities_player_provider ON player_identities (player_id, provider);

-- Steam session tickets already exchanged (SHA-256 of the ticket): a replayed ticket is refused.
CREATE TABLE spent_steam_tickets (
    ticket_hash TEXT PRIMARY KEY,
    spent_at BIGINT NOT NULL
);

-- Who did what to which account. No foreign key: the row outlives the erased player.
CREATE TABLE account_audit (
    id TEXT PRIMARY KEY,
    player_id TEXT NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}',
    at BIGINT NOT NULL
);
CREATE INDEX account_audit_player ON account_audit (player_id, at);
