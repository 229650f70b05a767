//! Tournaments on SQLite. Every write runs in one savepoint on the single writer connection, so
//! a join's capacity check, its entry and its fee cannot interleave with another join.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{
    fee_change, payout_key, reward_change, season_key, JoinOutcome, JoinRequest, Placement, Season,
    SeasonSettlement, Settlement, Tournament, Tournaments, TOURNAMENT_COLUMNS,
};
use crate::backend::Reply;
use crate::economy::sqlite::{apply_change, find_op, record_op};
use crate::economy::{encode, fingerprint_change};
use crate::error::parse_json_column;
use crate::sqlite::{write_tx, Fail, SqliteBackend};
use crate::{Refusal, WalletChange};

fn read(r: &Row<'_>) -> Result<Tournament, Fail> {
    let fee: String = r.get(4)?;
    let rewards: String = r.get(5)?;
    let metadata: String = r.get(9)?;
    Ok(Tournament {
        id: r.get(0)?,
        name: r.get(1)?,
        leaderboard_id: r.get(2)?,
        max_entries: r.get(3)?,
        entry_fee: parse_json_column("entry_fee", &fee)?,
        rewards: parse_json_column("rewards", &rewards)?,
        status: r.get(6)?,
        start_at: r.get(7)?,
        end_at: r.get(8)?,
        metadata: parse_json_column("metadata", &metadata)?,
        inserted_at: r.get(10)?,
        settled_at: r.get(11)?,
        entrants: r.get(12)?,
    })
}

fn get(conn: &Connection, id: &str) -> Result<Option<Tournament>, Fail> {
    let sql = format!("SELECT {TOURNAMENT_COLUMNS} FROM tournaments t WHERE t.id = ?1");
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params![id])?;
    match rows.next()? {
        Some(r) => Ok(Some(read(r)?)),
        None => Ok(None),
    }
}

/// Applies a wallet change once under its key: `Ok(true)` applied now, `Ok(false)` applied
/// before, `Err` refused.
fn once(conn: &Connection, c: &WalletChange) -> Result<Result<bool, Refusal>, Fail> {
    if find_op(conn, &c.player_id, &c.idempotency_key)?.is_some() {
        return Ok(Ok(false));
    }
    let receipt = match apply_change(conn, c)? {
        Ok(r) => r,
        Err(refused) => return Ok(Err(refused)),
    };
    record_op(
        conn,
        &c.player_id,
        &c.idempotency_key,
        &fingerprint_change(c),
        &encode(&receipt)?,
        c.now_ms,
    )?;
    Ok(Ok(true))
}

/// Grants each placement's reward once.
fn pay(
    conn: &Connection,
    placements: &[Placement],
    reason: &str,
    reference: (&str, &str),
    key: &str,
    now_ms: i64,
) -> Result<(), Fail> {
    for p in placements {
        if let Some((currency, amount)) = &p.reward {
            let c = reward_change(
                &p.player_id,
                currency,
                *amount,
                reason,
                reference,
                key.to_owned(),
                now_ms,
            );
            // A grant is never refused; a replayed key means it was paid before.
            if let Err(r) = once(conn, &c)? {
                return Err(Fail::Store(crate::StoreError::Backend(format!(
                    "reward grant refused: {r:?}"
                ))));
            }
        }
    }
    Ok(())
}

impl Tournaments for SqliteBackend {
    fn create_tournament(&self, t: Tournament) -> Reply<'_, bool> {
        self.run(move |conn| {
            let n = conn.execute(
                "INSERT INTO tournaments (id, name, leaderboard_id, max_entries, entry_fee, \
                 rewards, status, start_at, end_at, metadata, inserted_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) ON CONFLICT (id) DO NOTHING",
                params![
                    t.id,
                    t.name,
                    t.leaderboard_id,
                    t.max_entries,
                    t.entry_fee.to_string(),
                    t.rewards.to_string(),
                    t.status,
                    t.start_at,
                    t.end_at,
                    t.metadata.to_string(),
                    t.inserted_at
                ],
            )?;
            Ok(n == 1)
        })
    }

    fn tournaments(&self, status: Option<String>, limit: u32) -> Reply<'_, Vec<Tournament>> {
        self.run(move |conn| {
            let sql = format!(
                "SELECT {TOURNAMENT_COLUMNS} FROM tournaments t \
                 WHERE (?1 IS NULL OR t.status = ?1) ORDER BY t.start_at, t.id LIMIT ?2"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(params![status, limit])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(read(r)?);
            }
            Ok(out)
        })
    }

    fn tournament(&self, id: String) -> Reply<'_, Option<Tournament>> {
        self.run(move |conn| get(conn, &id))
    }

    fn set_tournament_status(&self, id: String, status: String) -> Reply<'_, ()> {
        self.run(move |conn| {
            conn.execute(
                "UPDATE tournaments SET status = ?2 WHERE id = ?1 AND settled_at IS NULL",
                params![id, status],
            )?;
            Ok(())
        })
    }

    fn join_tournament(&self, j: JoinRequest) -> Reply<'_, JoinOutcome> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let Some(t) = get(&tx, &j.tournament_id)? else {
                return Ok(JoinOutcome::NotFound);
            };
            let joined: Option<i64> = tx
                .prepare_cached(
                    "SELECT 1 FROM tournament_entries WHERE tournament_id = ?1 AND player_id = ?2",
                )?
                .query_row(params![j.tournament_id, j.player_id], |r| r.get(0))
                .optional()?;
            if joined.is_some() {
                return Ok(JoinOutcome::AlreadyJoined);
            }
            if t.settled_at.is_some()
                || t.status == "finished"
                || t.status == "cancelled"
                || j.now_ms >= t.end_at
            {
                return Ok(JoinOutcome::Closed);
            }
            if t.max_entries.is_some_and(|max| t.entrants >= max) {
                return Ok(JoinOutcome::Full);
            }
            let fee = match t.fee() {
                None => None,
                Some(fee) => {
                    let c = fee_change(&j, &fee);
                    let receipt = match apply_change(&tx, &c)? {
                        Ok(r) => r,
                        Err(Refusal::InsufficientFunds { balance }) => {
                            return Ok(JoinOutcome::InsufficientFunds { balance })
                        }
                        Err(other) => {
                            return Err(Fail::Store(crate::StoreError::Backend(format!(
                                "fee refused: {other:?}"
                            ))))
                        }
                    };
                    record_op(
                        &tx,
                        &c.player_id,
                        &c.idempotency_key,
                        &fingerprint_change(&c),
                        &encode(&receipt)?,
                        c.now_ms,
                    )?;
                    Some(Box::new(receipt))
                }
            };
            tx.execute(
                "INSERT INTO tournament_entries (tournament_id, player_id, joined_at) VALUES (?1, ?2, ?3)",
                params![j.tournament_id, j.player_id, j.now_ms],
            )?;
            tx.commit()?;
            Ok(JoinOutcome::Joined { fee })
        })
    }

    fn tournament_entrants(&self, id: String) -> Reply<'_, Vec<String>> {
        self.run(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT player_id FROM tournament_entries WHERE tournament_id = ?1 ORDER BY joined_at, player_id",
            )?;
            let rows = stmt.query_map(params![id], |r| r.get(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn settle_tournament(&self, s: Settlement) -> Reply<'_, bool> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let n = tx.execute(
                "UPDATE tournaments SET status = 'finished', settled_at = ?2 \
                 WHERE id = ?1 AND settled_at IS NULL",
                params![s.tournament_id, s.now_ms],
            )?;
            if n == 0 {
                return Ok(false);
            }
            for p in &s.placements {
                tx.execute(
                    "UPDATE tournament_entries SET final_rank = ?3, final_score = ?4 \
                     WHERE tournament_id = ?1 AND player_id = ?2",
                    params![s.tournament_id, p.player_id, p.rank, p.score],
                )?;
            }
            pay(
                &tx,
                &s.placements,
                "tournament_reward",
                ("tournament", &s.tournament_id),
                &payout_key(&s.tournament_id),
                s.now_ms,
            )?;
            tx.commit()?;
            Ok(true)
        })
    }

    fn create_season(&self, s: Season) -> Reply<'_, bool> {
        self.run(move |conn| {
            let boards = serde_json::to_string(&s.boards)
                .map_err(|e| crate::StoreError::Backend(e.to_string()))?;
            let n = conn.execute(
                "INSERT INTO seasons (id, name, boards, rewards, start_at, end_at, inserted_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (id) DO NOTHING",
                params![
                    s.id,
                    s.name,
                    boards,
                    s.rewards.to_string(),
                    s.start_at,
                    s.end_at,
                    s.inserted_at
                ],
            )?;
            Ok(n == 1)
        })
    }

    fn seasons(&self) -> Reply<'_, Vec<Season>> {
        self.run(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, name, boards, rewards, start_at, end_at, inserted_at, settled_at, reset_at \
                 FROM seasons ORDER BY start_at, id",
            )?;
            let mut rows = stmt.query([])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                let boards: String = r.get(2)?;
                let rewards: String = r.get(3)?;
                out.push(Season {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    boards: parse_json_column("boards", &boards)?,
                    rewards: parse_json_column("rewards", &rewards)?,
                    start_at: r.get(4)?,
                    end_at: r.get(5)?,
                    inserted_at: r.get(6)?,
                    settled_at: r.get(7)?,
                    reset_at: r.get(8)?,
                });
            }
            Ok(out)
        })
    }

    fn settle_season(&self, s: SeasonSettlement) -> Reply<'_, bool> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let n = tx.execute(
                "UPDATE seasons SET settled_at = ?2 WHERE id = ?1 AND settled_at IS NULL",
                params![s.season_id, s.now_ms],
            )?;
            if n == 0 {
                return Ok(false);
            }
            for (board, placements) in &s.boards {
                pay(
                    &tx,
                    placements,
                    "season_reward",
                    ("season", &s.season_id),
                    &season_key(&s.season_id, board),
                    s.now_ms,
                )?;
            }
            tx.commit()?;
            Ok(true)
        })
    }

    fn finish_season(&self, id: String, now_ms: i64) -> Reply<'_, bool> {
        self.run(move |conn| {
            let n = conn.execute(
                "UPDATE seasons SET reset_at = ?2 \
                 WHERE id = ?1 AND settled_at IS NOT NULL AND reset_at IS NULL",
                params![id, now_ms],
            )?;
            Ok(n == 1)
        })
    }
}
