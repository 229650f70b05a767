//! Tournaments on PostgreSQL. A join locks the tournament's row (`FOR UPDATE`) before it counts
//! entrants, so two concurrent joins for the last seat serialise and one is refused `Full`; a
//! settlement claims each payout key before granting, as the economy does.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::{
    fee_change, payout_key, reward_change, season_key, JoinOutcome, JoinRequest, Placement, Season,
    SeasonSettlement, Settlement, Tournament, Tournaments, TOURNAMENT_COLUMNS,
};
use crate::backend::Reply;
use crate::economy::postgres::{apply_change, claim_op, finish_op};
use crate::economy::{encode, fingerprint_change};
use crate::error::parse_json_column;
use crate::postgres::{op, Fail, PgBackend};
use crate::{Refusal, StoreError};

fn read(r: &Row) -> Result<Tournament, Fail> {
    let fee: String = r.try_get(4)?;
    let rewards: String = r.try_get(5)?;
    let metadata: String = r.try_get(9)?;
    Ok(Tournament {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        leaderboard_id: r.try_get(2)?,
        max_entries: r.try_get(3)?,
        entry_fee: parse_json_column("entry_fee", &fee)?,
        rewards: parse_json_column("rewards", &rewards)?,
        status: r.try_get(6)?,
        start_at: r.try_get(7)?,
        end_at: r.try_get(8)?,
        metadata: parse_json_column("metadata", &metadata)?,
        inserted_at: r.try_get(10)?,
        settled_at: r.try_get(11)?,
        entrants: r.try_get(12)?,
    })
}

/// Grants each placement's reward once under `key`.
async fn pay(
    c: &impl GenericClient,
    placements: &[Placement],
    reason: &str,
    reference: (&str, &str),
    key: &str,
    now_ms: i64,
) -> Result<(), Fail> {
    for p in placements {
        let Some((currency, amount)) = &p.reward else {
            continue;
        };
        let w = reward_change(
            &p.player_id,
            currency,
            *amount,
            reason,
            reference,
            key.to_owned(),
            now_ms,
        );
        let request = fingerprint_change(&w);
        if claim_op(c, &w.player_id, key, &request, now_ms)
            .await?
            .is_some()
        {
            continue; // paid before
        }
        let receipt = match apply_change(c, &w).await? {
            Ok(r) => r,
            Err(r) => {
                return Err(Fail::Store(StoreError::Backend(format!(
                    "reward grant refused: {r:?}"
                ))))
            }
        };
        finish_op(c, &w.player_id, key, &encode(&receipt)?).await?;
    }
    Ok(())
}

impl Tournaments for PgBackend {
    fn create_tournament(&self, t: Tournament) -> Reply<'_, bool> {
        op(async move {
            let client = self.client().await?;
            let n = client
                .execute(
                    "INSERT INTO tournaments (id, name, leaderboard_id, max_entries, entry_fee, \
                     rewards, status, start_at, end_at, metadata, inserted_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (id) DO NOTHING",
                    &[
                        &t.id,
                        &t.name,
                        &t.leaderboard_id,
                        &t.max_entries,
                        &t.entry_fee.to_string(),
                        &t.rewards.to_string(),
                        &t.status,
                        &t.start_at,
                        &t.end_at,
                        &t.metadata.to_string(),
                        &t.inserted_at,
                    ],
                )
                .await?;
            Ok(n == 1)
        })
    }

    fn tournaments(&self, status: Option<String>, limit: u32) -> Reply<'_, Vec<Tournament>> {
        op(async move {
            let client = self.client().await?;
            let sql = format!(
                "SELECT {TOURNAMENT_COLUMNS} FROM tournaments t \
                 WHERE ($1::text IS NULL OR t.status = $1) ORDER BY t.start_at, t.id LIMIT $2"
            );
            let rows = client.query(&sql, &[&status, &i64::from(limit)]).await?;
            rows.iter().map(read).collect()
        })
    }

    fn tournament(&self, id: String) -> Reply<'_, Option<Tournament>> {
        op(async move {
            let client = self.client().await?;
            let sql = format!("SELECT {TOURNAMENT_COLUMNS} FROM tournaments t WHERE t.id = $1");
            client
                .query_opt(&sql, &[&id])
                .await?
                .as_ref()
                .map(read)
                .transpose()
        })
    }

    fn set_tournament_status(&self, id: String, status: String) -> Reply<'_, ()> {
        op(async move {
            let client = self.client().await?;
            client
                .execute(
                    "UPDATE tournaments SET status = $2 WHERE id = $1 AND settled_at IS NULL",
                    &[&id, &status],
                )
                .await?;
            Ok(())
        })
    }

    fn join_tournament(&self, j: JoinRequest) -> Reply<'_, JoinOutcome> {
        op(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let locked = tx
                .query_opt(
                    "SELECT id FROM tournaments WHERE id = $1 FOR UPDATE",
                    &[&j.tournament_id],
                )
                .await?;
            if locked.is_none() {
                return Ok(JoinOutcome::NotFound);
            }
            let sql = format!("SELECT {TOURNAMENT_COLUMNS} FROM tournaments t WHERE t.id = $1");
            let t = read(&tx.query_one(&sql, &[&j.tournament_id]).await?)?;
            let joined = tx
                .query_opt(
                    "SELECT 1 FROM tournament_entries WHERE tournament_id = $1 AND player_id = $2",
                    &[&j.tournament_id, &j.player_id],
                )
                .await?;
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
                    let w = fee_change(&j, &fee);
                    let request = fingerprint_change(&w);
                    if claim_op(&tx, &w.player_id, &w.idempotency_key, &request, j.now_ms)
                        .await?
                        .is_some()
                    {
                        return Err(Fail::Store(StoreError::Backend(
                            "an entry fee key exists without its entry".into(),
                        )));
                    }
                    let receipt = match apply_change(&tx, &w).await? {
                        Ok(r) => r,
                        Err(Refusal::InsufficientFunds { balance }) => {
                            return Ok(JoinOutcome::InsufficientFunds { balance })
                        }
                        Err(other) => {
                            return Err(Fail::Store(StoreError::Backend(format!(
                                "fee refused: {other:?}"
                            ))))
                        }
                    };
                    finish_op(&tx, &w.player_id, &w.idempotency_key, &encode(&receipt)?).await?;
                    Some(Box::new(receipt))
                }
            };
            tx.execute(
                "INSERT INTO tournament_entries (tournament_id, player_id, joined_at) VALUES ($1, $2, $3)",
                &[&j.tournament_id, &j.player_id, &j.now_ms],
            )
            .await?;
            tx.commit().await?;
            Ok(JoinOutcome::Joined { fee })
        })
    }

    fn tournament_entrants(&self, id: String) -> Reply<'_, Vec<String>> {
        op(async move {
            let client = self.client().await?;
            let rows = client
                .query(
                    "SELECT player_id FROM tournament_entries WHERE tournament_id = $1 \
                     ORDER BY joined_at, player_id",
                    &[&id],
                )
                .await?;
            rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
        })
    }

    fn settle_tournament(&self, s: Settlement) -> Reply<'_, bool> {
        op(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let n = tx
                .execute(
                    "UPDATE tournaments SET status = 'finished', settled_at = $2 \
                     WHERE id = $1 AND settled_at IS NULL",
                    &[&s.tournament_id, &s.now_ms],
                )
                .await?;
            if n == 0 {
                return Ok(false);
            }
            for p in &s.placements {
                tx.execute(
                    "UPDATE tournament_entries SET final_rank = $3, final_score = $4 \
                     WHERE tournament_id = $1 AND player_id = $2",
                    &[&s.tournament_id, &p.player_id, &p.rank, &p.score],
                )
                .await?;
            }
            pay(
                &tx,
                &s.placements,
                "tournament_reward",
                ("tournament", &s.tournament_id),
                &payout_key(&s.tournament_id),
                s.now_ms,
            )
            .await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    fn create_season(&self, s: Season) -> Reply<'_, bool> {
        op(async move {
            let client = self.client().await?;
            let boards =
                serde_json::to_string(&s.boards).map_err(|e| StoreError::Backend(e.to_string()))?;
            let n = client
                .execute(
                    "INSERT INTO seasons (id, name, boards, rewards, start_at, end_at, inserted_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
                    &[
                        &s.id,
                        &s.name,
                        &boards,
                        &s.rewards.to_string(),
                        &s.start_at,
                        &s.end_at,
                        &s.inserted_at,
                    ],
                )
                .await?;
            Ok(n == 1)
        })
    }

    fn seasons(&self) -> Reply<'_, Vec<Season>> {
        op(async move {
            let client = self.client().await?;
            let rows = client
                .query(
                    "SELECT id, name, boards, rewards, start_at, end_at, inserted_at, settled_at, reset_at \
                     FROM seasons ORDER BY start_at, id",
                    &[],
                )
                .await?;
            rows.iter()
                .map(|r| {
                    let boards: String = r.try_get(2)?;
                    let rewards: String = r.try_get(3)?;
                    Ok(Season {
                        id: r.try_get(0)?,
                        name: r.try_get(1)?,
                        boards: parse_json_column("boards", &boards)?,
                        rewards: parse_json_column("rewards", &rewards)?,
                        start_at: r.try_get(4)?,
                        end_at: r.try_get(5)?,
                        inserted_at: r.try_get(6)?,
                        settled_at: r.try_get(7)?,
                        reset_at: r.try_get(8)?,
                    })
                })
                .collect()
        })
    }

    fn settle_season(&self, s: SeasonSettlement) -> Reply<'_, bool> {
        op(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let n = tx
                .execute(
                    "UPDATE seasons SET settled_at = $2 WHERE id = $1 AND settled_at IS NULL",
                    &[&s.season_id, &s.now_ms],
                )
                .await?;
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
                )
                .await?;
            }
            tx.commit().await?;
            Ok(true)
        })
    }

    fn finish_season(&self, id: String, now_ms: i64) -> Reply<'_, bool> {
        op(async move {
            let client = self.client().await?;
            let n = client
                .execute(
                    "UPDATE seasons SET reset_at = $2 \
                     WHERE id = $1 AND settled_at IS NOT NULL AND reset_at IS NULL",
                    &[&id, &now_ms],
                )
                .await?;
            Ok(n == 1)
        })
    }
}
