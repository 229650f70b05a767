-- In-app purchases: every verified store transaction, bound to the player who claimed it first
-- (a transaction id grants once), what it granted, and whether the store later refunded or
-- revoked it (and how much of the grant was taken back).
CREATE TABLE iap_transactions (
    provider TEXT NOT NULL,
    transaction_id TEXT NOT NULL,
    player_id TEXT NOT NULL,
    original_transaction_id TEXT,
    product_id TEXT,
    granted_currency TEXT,
    granted_amount BIGINT,
    -- verified | refunded | revoked
    status TEXT NOT NULL DEFAULT 'verified',
    inserted_at BIGINT NOT NULL,
    revoked_at BIGINT,
    reversed_amount BIGINT,
    PRIMARY KEY (provider, transaction_id)
);
CREATE INDEX iap_transactions_player ON iap_transactions (player_id, inserted_at);
