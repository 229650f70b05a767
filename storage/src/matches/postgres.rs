//! Match history on PostgreSQL.

use tokio_postgres::Row;

use super::{clamp_limit, record_from_columns, MatchQuery, MatchRecord, Matches, MATCH_COLUMNS};
use crate::backend::Reply;
use crate::postgres::{op, Fail, PgBackend};

pub(crate) fn read_match(r: &Row) -> Result<MatchRecord, Fail> {
    let columns = (
        r.try_get(0)?,
        r.try_get(1)?,
        r.try_get(2)?,
        r.try_get(3)?,
        r.try_get(4)?,
        r.try_get(5)?,
        r.try_get(6)?,
    );
    Ok(record_from_columns(columns)?)
}

impl Matches for PgBackend {
    fn insert_match_record(&self, r: MatchRecord) -> Reply<'_, ()> {
        op(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let players = serde_json::Value::from(r.players.clone()).to_string();
            tx.execute(
                "INSERT INTO match_records (id, mode, status, players, result, started_at, finished_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[&r.id, &r.mode, &r.status, &players, &r.result.to_string(), &r.started_at, &r.finished_at],
            )
            .await?;
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO match_record_players (match_id, player_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                )
                .await?;
            for player in &r.players {
                tx.execute(&stmt, &[&r.id, player]).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn match_record(&self, id: String) -> Reply<'_, Option<MatchRecord>> {
        op(async move {
            let client = self.client().await?;
            let sql = format!("SELECT {MATCH_COLUMNS} FROM match_records m WHERE m.id = $1");
            let stmt = client.prepare_cached(&sql).await?;
            client
                .query_opt(&stmt, &[&id])
                .await?
                .as_ref()
                .map(read_match)
                .transpose()
        })
    }

    fn list_match_records(&self, q: MatchQuery) -> Reply<'_, Vec<MatchRecord>> {
        op(async move {
            let client = self.client().await?;
            let sql = format!(
                "SELECT {MATCH_COLUMNS} FROM match_records m \
                 WHERE ($1::text IS NULL OR m.mode = $1) AND ($2::text IS NULL OR m.status = $2) \
                 AND ($3::text IS NULL OR EXISTS (SELECT 1 FROM match_record_players mp \
                      WHERE mp.match_id = m.id AND mp.player_id = $3)) \
                 ORDER BY m.finished_at DESC, m.id DESC LIMIT $4"
            );
            let stmt = client.prepare_cached(&sql).await?;
            let limit = i64::from(clamp_limit(q.limit));
            let rows = client
                .query(&stmt, &[&q.mode, &q.status, &q.player_id, &limit])
                .await?;
            rows.iter().map(read_match).collect()
        })
    }
}
