//! Vote history on SQLite.

use rusqlite::{params, Row};

use super::{from_columns, VoteRecord, Votes, VOTE_COLUMNS};
use crate::backend::Reply;
use crate::sqlite::{write_tx, Fail, SqliteBackend};

fn read(r: &Row<'_>) -> Result<VoteRecord, Fail> {
    let c = (
        (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?),
        (r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?),
        (
            r.get(9)?,
            r.get(10)?,
            r.get(11)?,
            r.get(12)?,
            r.get(13)?,
            r.get(14)?,
        ),
    );
    Ok(from_columns(c)?)
}

impl Votes for SqliteBackend {
    fn insert_vote(&self, v: VoteRecord) -> Reply<'_, ()> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            tx.execute(
                &format!(
                    "INSERT INTO votes ({VOTE_COLUMNS}) VALUES \
                     (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
                ),
                params![
                    v.id,
                    v.match_id,
                    v.template,
                    v.method,
                    v.visibility,
                    v.options.to_string(),
                    v.votes_cast.to_string(),
                    v.result.to_string(),
                    v.distribution.to_string(),
                    v.turnout,
                    v.eligible_count,
                    v.window_ms,
                    v.opened_at,
                    v.closed_at,
                    v.inserted_at
                ],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    fn vote(&self, id: String) -> Reply<'_, Option<VoteRecord>> {
        self.run(move |conn| {
            let sql = format!("SELECT {VOTE_COLUMNS} FROM votes WHERE id = ?1");
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(params![id])?;
            rows.next()?.map(read).transpose()
        })
    }

    fn votes_for_match(&self, match_id: String, limit: u32) -> Reply<'_, Vec<VoteRecord>> {
        self.run(move |conn| {
            let sql = format!(
                "SELECT {VOTE_COLUMNS} FROM votes WHERE match_id = ?1 \
                 ORDER BY inserted_at DESC, id DESC LIMIT ?2"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(params![match_id, limit])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(read(row)?);
            }
            Ok(out)
        })
    }
}
