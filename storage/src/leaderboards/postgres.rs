//! Leaderboards on PostgreSQL. Batches go in as arrays through `UNNEST`, one statement per
//! flush, so a flush of thousands of entries is one round trip, not thousands.

use tokio_postgres::Row;

use super::{ArchivedEntry, BoardEntry, Leaderboards, PeriodEnd, SavedBoard};
use crate::backend::Reply;
use crate::postgres::{op, Fail, PgBackend};

fn read_entry(r: &Row) -> Result<BoardEntry, Fail> {
    Ok(BoardEntry {
        player_id: r.try_get(0)?,
        score: r.try_get(1)?,
        sub_score: r.try_get(2)?,
        seq: r.try_get(3)?,
        metadata: r.try_get(4)?,
        updated_at: r.try_get(5)?,
    })
}

/// Column arrays of a batch of entries.
struct Columns {
    players: Vec<String>,
    scores: Vec<i64>,
    subs: Vec<i64>,
    seqs: Vec<i64>,
    metas: Vec<Option<String>>,
    updated: Vec<i64>,
}

fn columns<'a>(rows: impl Iterator<Item = &'a BoardEntry>) -> Columns {
    let mut c = Columns {
        players: Vec::new(),
        scores: Vec::new(),
        subs: Vec::new(),
        seqs: Vec::new(),
        metas: Vec::new(),
        updated: Vec::new(),
    };
    for r in rows {
        c.players.push(r.player_id.clone());
        c.scores.push(r.score);
        c.subs.push(r.sub_score);
        c.seqs.push(r.seq);
        c.metas.push(r.metadata.clone());
        c.updated.push(r.updated_at);
    }
    c
}

impl Leaderboards for PgBackend {
    fn save_leaderboard_entries(&self, board: String, rows: Vec<BoardEntry>) -> Reply<'_, ()> {
        op(async move {
            let client = self.client().await?;
            let c = columns(rows.iter());
            let stmt = client
                .prepare_cached(
                    "INSERT INTO leaderboard_entries \
                     (board_id, player_id, score, sub_score, seq, metadata, updated_at) \
                     SELECT $1, * FROM UNNEST($2::text[], $3::bigint[], $4::bigint[], \
                     $5::bigint[], $6::text[], $7::bigint[]) \
                     ON CONFLICT (board_id, player_id) DO UPDATE SET score = excluded.score, \
                     sub_score = excluded.sub_score, seq = excluded.seq, \
                     metadata = excluded.metadata, updated_at = excluded.updated_at",
                )
                .await?;
            client
                .execute(
                    &stmt,
                    &[
                        &board, &c.players, &c.scores, &c.subs, &c.seqs, &c.metas, &c.updated,
                    ],
                )
                .await?;
            Ok(())
        })
    }

    fn saved_leaderboard(&self, board: String) -> Reply<'_, SavedBoard> {
        op(async move {
            let client = self.client().await?;
            let period_start = client
                .query_opt(
                    "SELECT period_start FROM leaderboard_periods WHERE board_id = $1",
                    &[&board],
                )
                .await?
                .map(|r| r.try_get::<_, i64>(0))
                .transpose()?;
            let rows = client
                .query(
                    "SELECT player_id, score, sub_score, seq, metadata, updated_at \
                     FROM leaderboard_entries WHERE board_id = $1",
                    &[&board],
                )
                .await?;
            let entries = rows.iter().map(read_entry).collect::<Result<_, _>>()?;
            Ok(SavedBoard {
                period_start,
                entries,
            })
        })
    }

    fn reset_leaderboard(&self, end: PeriodEnd) -> Reply<'_, ()> {
        op(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let c = columns(end.ranked.iter().map(|a| &a.entry));
            let ranks: Vec<i64> = end.ranked.iter().map(|a| a.rank).collect();
            tx.execute(
                "INSERT INTO leaderboard_archive (board_id, period_start, player_id, rank, score, \
                 sub_score, metadata, updated_at, archived_at) \
                 SELECT $1, $2, p, r, s, ss, m, u, $9 FROM UNNEST($3::text[], $4::bigint[], \
                 $5::bigint[], $6::bigint[], $7::text[], $8::bigint[]) AS t(p, r, s, ss, m, u) \
                 ON CONFLICT DO NOTHING",
                &[
                    &end.board_id,
                    &end.period_start,
                    &c.players,
                    &ranks,
                    &c.scores,
                    &c.subs,
                    &c.metas,
                    &c.updated,
                    &end.archived_at,
                ],
            )
            .await?;
            tx.execute(
                "DELETE FROM leaderboard_entries WHERE board_id = $1",
                &[&end.board_id],
            )
            .await?;
            tx.execute(
                "INSERT INTO leaderboard_periods (board_id, period_start) VALUES ($1, $2) \
                 ON CONFLICT (board_id) DO UPDATE SET period_start = excluded.period_start",
                &[&end.board_id, &end.next_period_start],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn leaderboard_archive(
        &self,
        board: String,
        period_start: i64,
        limit: u32,
    ) -> Reply<'_, Vec<ArchivedEntry>> {
        op(async move {
            let client = self.client().await?;
            let rows = client
                .query(
                    "SELECT player_id, score, sub_score, 0::bigint, metadata, updated_at, rank \
                     FROM leaderboard_archive WHERE board_id = $1 AND period_start = $2 \
                     ORDER BY rank LIMIT $3",
                    &[&board, &period_start, &i64::from(limit)],
                )
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(ArchivedEntry {
                        rank: r.try_get(6)?,
                        entry: read_entry(r)?,
                    })
                })
                .collect()
        })
    }
}
