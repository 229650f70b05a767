//! Match history on SQLite.

use rusqlite::{params, Row};

use super::{clamp_limit, record_from_columns, MatchQuery, MatchRecord, Matches, MATCH_COLUMNS};
use crate::backend::Reply;
use crate::sqlite::{write_tx, Fail, SqliteBackend};

pub(crate) fn read_match(r: &Row<'_>) -> Result<MatchRecord, Fail> {
    let columns = (
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    );
    Ok(record_from_columns(columns)?)
}

impl Matches for SqliteBackend {
    fn insert_match_record(&self, r: MatchRecord) -> Reply<'_, ()> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let players = serde_json::Value::from(r.players.clone()).to_string();
            tx.execute(
                "INSERT INTO match_records (id, mode, status, players, result, started_at, finished_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![r.id, r.mode, r.status, players, r.result.to_string(), r.started_at, r.finished_at],
            )?;
            for player in &r.players {
                tx.execute(
                    "INSERT INTO match_record_players (match_id, player_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                    params![r.id, player],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn match_record(&self, id: String) -> Reply<'_, Option<MatchRecord>> {
        self.run(move |conn| {
            let sql = format!("SELECT {MATCH_COLUMNS} FROM match_records m WHERE m.id = ?1");
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(params![id])?;
            rows.next()?.map(read_match).transpose()
        })
    }

    fn list_match_records(&self, q: MatchQuery) -> Reply<'_, Vec<MatchRecord>> {
        self.run(move |conn| {
            let sql = format!(
                "SELECT {MATCH_COLUMNS} FROM match_records m \
                 WHERE (?1 IS NULL OR m.mode = ?1) AND (?2 IS NULL OR m.status = ?2) \
                 AND (?3 IS NULL OR EXISTS (SELECT 1 FROM match_record_players mp \
                      WHERE mp.match_id = m.id AND mp.player_id = ?3)) \
                 ORDER BY m.finished_at DESC, m.id DESC LIMIT ?4"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows =
                stmt.query(params![q.mode, q.status, q.player_id, clamp_limit(q.limit)])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(read_match(row)?);
            }
            Ok(out)
        })
    }
}
