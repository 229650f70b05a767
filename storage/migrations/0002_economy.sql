-- Economy: wallets, their append-only ledger, player inventory and the idempotency record.
-- Portable SQL (SQLite and PostgreSQL). Item definitions and store listings are not here: they
-- come from the game's economy file (see the engine's README), so rows name them by id only.

-- One wallet per player and currency. No foreign key to players: a game may credit ids its
-- script invents (bots, guests not yet stored), as asobi's Lua API lets it.
CREATE TABLE wallets (
    id TEXT PRIMARY KEY,
    player_id TEXT NOT NULL,
    currency TEXT NOT NULL,
    -- The CHECK is the last line of defence: the debit statement already refuses to go below 0.
    balance BIGINT NOT NULL CHECK (balance >= 0),
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX wallets_player_currency ON wallets (player_id, currency);

-- Append-only: rows are inserted in the same transaction as the balance change and never
-- updated or deleted, so a wallet's balance always equals the sum of its entries' amounts.
CREATE TABLE wallet_ledger (
    id TEXT PRIMARY KEY,
    wallet_id TEXT NOT NULL REFERENCES wallets (id),
    amount BIGINT NOT NULL,
    balance_after BIGINT NOT NULL CHECK (balance_after >= 0),
    reason TEXT NOT NULL,
    reference_type TEXT,
    reference_id TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    idempotency_key TEXT NOT NULL,
    inserted_at BIGINT NOT NULL
);
CREATE INDEX wallet_ledger_recent ON wallet_ledger (wallet_id, inserted_at DESC, id DESC);

CREATE TABLE player_items (
    id TEXT PRIMARY KEY,
    player_id TEXT NOT NULL,
    item_def_id TEXT NOT NULL,
    quantity BIGINT NOT NULL CHECK (quantity > 0),
    metadata TEXT NOT NULL DEFAULT '{}',
    acquired_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX player_items_recent ON player_items (player_id, acquired_at DESC, id DESC);

-- One row per applied money or item operation that carried an idempotency key: the request's
-- fingerprint (to refuse a key reused for a different request) and the result a retry gets back.
CREATE TABLE economy_operations (
    player_id TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    request TEXT NOT NULL,
    result TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (player_id, idempotency_key)
);
