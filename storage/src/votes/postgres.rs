//! Vote history on PostgreSQL.

use tokio_postgres::Row;

use super::{from_columns, VoteRecord, Votes, VOTE_COLUMNS};
use crate::backend::Reply;
use crate::postgres::{op, Fail, PgBackend};

fn read(r: &Row) -> Result<VoteRecord, Fail> {
    let c = (
        (
            r.try_get(0)?,
            r.try_get(1)?,
            r.try_get(2)?,
            r.try_get(3)?,
            r.try_get(4)?,
        ),
        (r.try_get(5)?, r.try_get(6)?, r.try_get(7)?, r.try_get(8)?),
        (
            r.try_get(9)?,
            r.try_get(10)?,
            r.try_get(11)?,
            r.try_get(12)?,
            r.try_get(13)?,
            r.try_get(14)?,
        ),
    );
    Ok(from_columns(c)?)
}

impl Votes for PgBackend {
    fn insert_vote(&self, v: VoteRecord) -> Reply<'_, ()> {
        op(async move {
            let client = self.client().await?;
            let sql = format!(
                "INSERT INTO votes ({VOTE_COLUMNS}) VALUES \
                 ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
            );
            let stmt = client.prepare_cached(&sql).await?;
            client
                .execute(
                    &stmt,
                    &[
                        &v.id,
                        &v.match_id,
                        &v.template,
                        &v.method,
                        &v.visibility,
                        &v.options.to_string(),
                        &v.votes_cast.to_string(),
                        &v.result.to_string(),
                        &v.distribution.to_string(),
                        &v.turnout,
                        &v.eligible_count,
                        &v.window_ms,
                        &v.opened_at,
                        &v.closed_at,
                        &v.inserted_at,
                    ],
                )
                .await?;
            Ok(())
        })
    }

    fn vote(&self, id: String) -> Reply<'_, Option<VoteRecord>> {
        op(async move {
            let client = self.client().await?;
            let sql = format!("SELECT {VOTE_COLUMNS} FROM votes WHERE id = $1");
            let stmt = client.prepare_cached(&sql).await?;
            client
                .query_opt(&stmt, &[&id])
                .await?
                .as_ref()
                .map(read)
                .transpose()
        })
    }

    fn votes_for_match(&self, match_id: String, limit: u32) -> Reply<'_, Vec<VoteRecord>> {
        op(async move {
            let client = self.client().await?;
            let sql = format!(
                "SELECT {VOTE_COLUMNS} FROM votes WHERE match_id = $1 \
                 ORDER BY inserted_at DESC, id DESC LIMIT $2"
            );
            let stmt = client.prepare_cached(&sql).await?;
            let limit = i64::from(limit);
            let rows = client.query(&stmt, &[&match_id, &limit]).await?;
            rows.iter().map(read).collect()
        })
    }
}
