-- A season ends in two steps: its rewards are paid (settled_at, one transaction with the
-- grants) and then its boards are reset. reset_at records that the second step finished, so a
-- server that stopped in between resets the boards at its next start instead of forgetting
-- them; the resets themselves are idempotent (a board already in the season's next period is
-- left alone), so repeating them clears nothing twice.
ALTER TABLE seasons ADD COLUMN reset_at BIGINT;
