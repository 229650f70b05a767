//! Leaderboards on SQLite.

use rusqlite::params;

use super::{ArchivedEntry, BoardEntry, Leaderboards, PeriodEnd, SavedBoard};
use crate::backend::Reply;
use crate::sqlite::{write_tx, SqliteBackend};

impl Leaderboards for SqliteBackend {
    fn save_leaderboard_entries(&self, board: String, rows: Vec<BoardEntry>) -> Reply<'_, ()> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO leaderboard_entries \
                     (board_id, player_id, score, sub_score, seq, metadata, updated_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                     ON CONFLICT (board_id, player_id) DO UPDATE SET score = excluded.score, \
                     sub_score = excluded.sub_score, seq = excluded.seq, \
                     metadata = excluded.metadata, updated_at = excluded.updated_at",
                )?;
                for r in &rows {
                    stmt.execute(params![
                        board,
                        r.player_id,
                        r.score,
                        r.sub_score,
                        r.seq,
                        r.metadata,
                        r.updated_at
                    ])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn saved_leaderboard(&self, board: String) -> Reply<'_, SavedBoard> {
        self.run(move |conn| {
            let period_start = conn
                .prepare_cached("SELECT period_start FROM leaderboard_periods WHERE board_id = ?1")?
                .query_row(params![board], |r| r.get::<_, i64>(0))
                .map(Some)
                .or_else(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => Ok(None),
                    e => Err(e),
                })?;
            let mut stmt = conn.prepare_cached(
                "SELECT player_id, score, sub_score, seq, metadata, updated_at \
                 FROM leaderboard_entries WHERE board_id = ?1",
            )?;
            let mut rows = stmt.query(params![board])?;
            let mut entries = Vec::new();
            while let Some(r) = rows.next()? {
                entries.push(BoardEntry {
                    player_id: r.get(0)?,
                    score: r.get(1)?,
                    sub_score: r.get(2)?,
                    seq: r.get(3)?,
                    metadata: r.get(4)?,
                    updated_at: r.get(5)?,
                });
            }
            Ok(SavedBoard {
                period_start,
                entries,
            })
        })
    }

    fn reset_leaderboard(&self, end: PeriodEnd) -> Reply<'_, ()> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO leaderboard_archive (board_id, period_start, player_id, rank, \
                     score, sub_score, metadata, updated_at, archived_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT DO NOTHING",
                )?;
                for a in &end.ranked {
                    let e = &a.entry;
                    stmt.execute(params![
                        end.board_id,
                        end.period_start,
                        e.player_id,
                        a.rank,
                        e.score,
                        e.sub_score,
                        e.metadata,
                        e.updated_at,
                        end.archived_at
                    ])?;
                }
            }
            tx.execute(
                "DELETE FROM leaderboard_entries WHERE board_id = ?1",
                params![end.board_id],
            )?;
            tx.execute(
                "INSERT INTO leaderboard_periods (board_id, period_start) VALUES (?1, ?2) \
                 ON CONFLICT (board_id) DO UPDATE SET period_start = excluded.period_start",
                params![end.board_id, end.next_period_start],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    fn leaderboard_archive(
        &self,
        board: String,
        period_start: i64,
        limit: u32,
    ) -> Reply<'_, Vec<ArchivedEntry>> {
        self.run(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT rank, player_id, score, sub_score, metadata, updated_at \
                 FROM leaderboard_archive WHERE board_id = ?1 AND period_start = ?2 \
                 ORDER BY rank LIMIT ?3",
            )?;
            let mut rows = stmt.query(params![board, period_start, limit])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(ArchivedEntry {
                    rank: r.get(0)?,
                    entry: BoardEntry {
                        player_id: r.get(1)?,
                        score: r.get(2)?,
                        sub_score: r.get(3)?,
                        seq: 0,
                        metadata: r.get(4)?,
                        updated_at: r.get(5)?,
                    },
                });
            }
            Ok(out)
        })
    }
}
