//! `purchase`: store purchases over asobi's REST API, end to end (HTTP, auth, JSON, the
//! economy service, the bridge to storage, the commit), then an audit of every wallet.
//!
//! Each player is funded through the ops plane (`POST /api/v1/ops/players/:id/wallets/grant`, so the
//! server needs `ASOBI_OPS_SECRET` and the scenario `--ops-secret`), then C keep-alive
//! connections (one thread each) buy the first active listing of `GET /api/v1/store` M times,
//! each purchase with its own idempotency key. Players are dealt round-robin across connections,
//! so one wallet is debited from several connections at once. Every `--replay-every`-th
//! purchase is sent a second time with the same key: the server must answer it without taking
//! the money twice.
//!
//! Figures: purchases/s over the window, round-trip p50/p99, the statuses seen, and the
//! server-side tick lateness of any matches running meanwhile (from `/metrics`, so a `play` run
//! against the same server shows whether purchases disturb gameplay). The audit then reads
//! every wallet and inventory back: balance must equal grant − price × purchases that succeeded,
//! and the item count must equal those purchases; any difference is reported and fails the run.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};

use super::{put, q_ms, thousands, CpuMeter, RunSpec};
use crate::auth::Player;
use crate::result::round3;
use crate::runner::{AuthMode, Metric};
use crate::scrape::{self, Buckets};

/// Rows one `GET /inventory` returns at most.
const INVENTORY_PAGE: i64 = 200;

/// Parameters of `purchase`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PurchaseParams {
    /// Concurrent keep-alive connections (one client thread each).
    pub connections: usize,
    /// Purchases per connection.
    pub purchases: u64,
    /// Send every n-th purchase twice with the same idempotency key (0 = never).
    pub replay_every: u64,
    /// The ops plane's secret, to fund the wallets.
    #[serde(skip)]
    pub ops_secret: String,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

fn call(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    bearer: &str,
    body: Option<&Value>,
) -> anyhow::Result<(u16, Value)> {
    let auth = format!("Bearer {bearer}");
    let mut resp = match (method, body) {
        ("GET", _) => agent.get(url).header("authorization", &auth).call()?,
        (_, Some(b)) => agent
            .post(url)
            .header("authorization", &auth)
            .send_json(b)?,
        (_, None) => bail!("POST without a body"),
    };
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string()?;
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok((status, v))
}

/// What one connection saw.
#[derive(Default)]
struct Outcome {
    ok: u64,
    replays_ok: u64,
    statuses: BTreeMap<String, u64>,
    /// Successful purchases per player index.
    per_player: BTreeMap<usize, i64>,
}

/// Runs the scenario.
pub async fn run(spec: &RunSpec, p: &PurchaseParams) -> anyhow::Result<crate::result::Run> {
    let AuthMode::Players(set) = &spec.auth else {
        bail!("purchase needs real players (drop --no-auth)");
    };
    let mut players: Vec<Player> = set
        .players
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if players.is_empty() {
        bail!("no players");
    }
    if p.ops_secret.is_empty() {
        bail!("purchase funds wallets through the ops plane: give --ops-secret (and the server ASOBI_OPS_SECRET)");
    }
    let (shared, pool, mon) = spec.start(Metric::Rtt)?;
    let base = scrape::http_base(&spec.url);
    let api = format!("{base}/api/v1");
    let a = agent();
    // Cached tokens may predate this server's signing key: renew the ones it refuses.
    for (i, pl) in players.iter_mut().enumerate() {
        let (st, _) = call(&a, "GET", &format!("{api}/wallets"), &pl.access_token, None)?;
        if st == 401 {
            *pl = set.accounts.reauthenticate(i)?;
        }
    }

    // The listing every purchase buys.
    let (status, store) = call(
        &a,
        "GET",
        &format!("{api}/store"),
        &players[0].access_token,
        None,
    )?;
    if status != 200 {
        bail!("GET /store answered {status}: {store}");
    }
    let listing = store["listings"]
        .as_array()
        .and_then(|l| l.first())
        .cloned()
        .ok_or_else(|| {
            anyhow!("the store has no active listing (add an economy.json to the game)")
        })?;
    let listing_id = listing["id"].as_str().unwrap_or_default().to_owned();
    let item_id = listing["item_def_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let currency = listing["currency"].as_str().unwrap_or_default().to_owned();
    let price = listing["price"].as_i64().unwrap_or(0);
    if listing_id.is_empty() || price <= 0 {
        bail!("unusable listing: {listing}");
    }

    // Fund every wallet with exactly what its share of purchases costs, plus one price, so the
    // audit can tell a double debit (balance short) from a lost one (balance over).
    let total = p.connections as u64 * p.purchases;
    let per_player = total.div_ceil(players.len() as u64) as i64 + 1;
    let grant = per_player * price;
    let run_tag = format!("{:x}", std::process::id() as u64 ^ now_nanos());
    let mut before: Vec<(i64, i64)> = Vec::with_capacity(players.len());
    for (i, pl) in players.iter().enumerate() {
        let body = json!({"currency": currency, "amount": grant, "reason": "loadtest",
                          "idempotency_key": format!("lt-fund-{run_tag}-{i}")});
        let url = format!("{api}/ops/players/{}/wallets/grant", pl.player_id);
        let (st, v) = call(&a, "POST", &url, &p.ops_secret, Some(&body))?;
        if st != 200 {
            bail!("funding {} answered {st}: {v}", pl.player_id);
        }
        before.push(read_back(&a, &api, pl, &currency, &item_id)?);
    }

    let lateness = "tick_lateness_seconds";
    let metrics0 = scrape::fetch(&base).ok();
    let done = Arc::new(AtomicU64::new(0));
    let hist = Arc::new(Mutex::new(Histogram::<u64>::new(3)?));
    let players = Arc::new(players);
    let cores: Vec<usize> = spec.client_cores.iter().flatten().copied().collect();
    let cpu = CpuMeter::start(spec.server.pid);
    let t0 = Instant::now();
    let mut threads = Vec::with_capacity(p.connections);
    for c in 0..p.connections {
        let (players, done, hist, api) = (players.clone(), done.clone(), hist.clone(), api.clone());
        let (listing_id, run_tag, cores) = (listing_id.clone(), run_tag.clone(), cores.clone());
        let (n, replay_every, conns) = (p.purchases, p.replay_every, p.connections as u64);
        threads.push(std::thread::spawn(move || -> Outcome {
            if !cores.is_empty() {
                let _ = crate::sys::pin_current_thread(&cores);
            }
            let a = agent();
            let mut local = Histogram::<u64>::new(3).expect("histogram");
            let mut out = Outcome::default();
            for j in 0..n {
                let seq = j * conns + c as u64;
                let pi = (seq % players.len() as u64) as usize;
                let body = json!({"listing_id": listing_id, "quantity": 1,
                                  "idempotency_key": format!("lt-buy-{run_tag}-{seq}")});
                let url = format!("{api}/store/purchase");
                let tries = if replay_every > 0 && seq.is_multiple_of(replay_every) {
                    2
                } else {
                    1
                };
                for t in 0..tries {
                    let start = Instant::now();
                    let r = call(&a, "POST", &url, &players[pi].access_token, Some(&body));
                    let us = start.elapsed().as_micros().max(1) as u64;
                    let key = match &r {
                        Ok((st, v)) => {
                            let code = v["error"].as_str().or_else(|| v["code"].as_str());
                            match code {
                                Some(code) => format!("{st} {code}"),
                                None => st.to_string(),
                            }
                        }
                        Err(e) => format!("transport: {e}"),
                    };
                    *out.statuses.entry(key).or_default() += 1;
                    if matches!(r, Ok((200, _))) {
                        if t == 0 {
                            let _ = local.record(us);
                            out.ok += 1;
                            *out.per_player.entry(pi).or_default() += 1;
                        } else {
                            out.replays_ok += 1;
                        }
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            if let Ok(mut h) = hist.lock() {
                let _ = h.add(&local);
            }
            out
        }));
    }
    let mut last = 0;
    let mut stalled = 0;
    while done.load(Ordering::Relaxed) < total {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = done.load(Ordering::Relaxed);
        if !spec.quiet {
            eprint!("\r{}: {now}/{total} purchases", spec.label);
        }
        stalled = if now == last { stalled + 1 } else { 0 };
        last = now;
        if stalled > 240 {
            bail!("no purchase completed for 60 s");
        }
    }
    let elapsed = t0.elapsed().as_secs_f64().max(1e-9);
    let cpu = cpu.stop();
    let metrics1 = scrape::fetch(&base).ok();
    if !spec.quiet {
        eprintln!();
    }
    let mut outcome = Outcome::default();
    for t in threads {
        let o = t.join().map_err(|_| anyhow!("a client thread panicked"))?;
        outcome.ok += o.ok;
        outcome.replays_ok += o.replays_ok;
        for (k, v) in o.statuses {
            *outcome.statuses.entry(k).or_default() += v;
        }
        for (k, v) in o.per_player {
            *outcome.per_player.entry(k).or_default() += v;
        }
    }

    // The audit: every wallet and inventory read back.
    let a = agent();
    let mut wrong = Vec::new();
    // An inventory page holds at most 200 rows (asobi's clamp) and each purchase may add one,
    // so items are audited only while every player's rows fit on one page (a fresh data dir).
    let items_audited = before
        .iter()
        .enumerate()
        .all(|(i, b)| b.1 + outcome.per_player.get(&i).copied().unwrap_or(0) < INVENTORY_PAGE);
    for (i, pl) in players.iter().enumerate() {
        let bought = outcome.per_player.get(&i).copied().unwrap_or(0);
        let (bal0, items0) = before[i];
        let (bal, items) = read_back(&a, &api, pl, &currency, &item_id)?;
        let items_wrong = items_audited && items != items0 + bought;
        if bal != bal0 - bought * price || items_wrong || bal < 0 {
            wrong.push(format!(
                "{}: balance {bal0}→{bal} and items {items0}→{items} after {bought} purchases of {price}",
                pl.player_id
            ));
        }
    }
    pool.stop();

    let h = hist.lock().map_err(|_| anyhow!("histogram lock"))?.clone();
    let mut f = Map::new();
    f.insert("players".into(), players.len().into());
    f.insert("purchases".into(), outcome.ok.into());
    f.insert("replays_answered".into(), outcome.replays_ok.into());
    f.insert("statuses".into(), json!(outcome.statuses));
    f.insert("listing_price".into(), price.into());
    f.insert(
        "purchases_per_s".into(),
        (outcome.ok as f64 / elapsed).round().into(),
    );
    put(&mut f, "purchase_p50_ms", q_ms(&h, 0.5));
    put(&mut f, "purchase_p99_ms", q_ms(&h, 0.99));
    f.insert("audit_wallets".into(), players.len().into());
    f.insert("audit_mismatches".into(), wrong.len().into());
    f.insert("audit_inventory".into(), items_audited.into());
    if let (Some(m0), Some(m1)) = (&metrics0, &metrics1) {
        let w = Buckets::parse(m1, lateness).since(&Buckets::parse(m0, lateness));
        f.insert("server_ticks".into(), w.count().into());
        put(
            &mut f,
            "server_tick_lateness_p50_ms",
            w.quantile(0.5).map(ms),
        );
        put(
            &mut f,
            "server_tick_lateness_p99_ms",
            w.quantile(0.99).map(ms),
        );
    }
    f.insert(
        "server_cores_busy".into(),
        json!(cpu.server_util.map(round3)),
    );
    let num = |k: &str| f.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
    let headline = format!(
        "{} purchases over {} connections by {} players: {} purchases/s; round trip p50 {:.3} p99 {:.3} ms; audit {} of {} wallets wrong; {} replays answered once",
        thousands(outcome.ok as f64),
        p.connections,
        players.len(),
        thousands(outcome.ok as f64 / elapsed),
        num("purchase_p50_ms"),
        num("purchase_p99_ms"),
        wrong.len(),
        players.len(),
        outcome.replays_ok,
    );
    for w in wrong.iter().take(10) {
        eprintln!("audit: {w}");
    }
    let run = spec.finish(&shared, mon, cpu, f, &[], headline);
    if !wrong.is_empty() {
        bail!("the audit found {} wrong wallets", wrong.len());
    }
    Ok(run)
}

fn ms(seconds: f64) -> f64 {
    if seconds.is_finite() {
        round3(seconds * 1000.0)
    } else {
        f64::INFINITY
    }
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A player's balance in `currency` and how many of `item` it holds.
fn read_back(
    a: &ureq::Agent,
    api: &str,
    pl: &Player,
    currency: &str,
    item: &str,
) -> anyhow::Result<(i64, i64)> {
    let (st, w) = call(a, "GET", &format!("{api}/wallets"), &pl.access_token, None)?;
    if st != 200 {
        bail!("GET /wallets answered {st}: {w}");
    }
    let balance = w["wallets"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|x| x["currency"] == currency)
        .and_then(|x| x["balance"].as_i64())
        .unwrap_or(0);
    let (st, inv) = call(
        a,
        "GET",
        &format!("{api}/inventory?limit={INVENTORY_PAGE}"),
        &pl.access_token,
        None,
    )
    .context("inventory")?;
    if st != 200 {
        bail!("GET /inventory answered {st}: {inv}");
    }
    let items = inv["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|x| x["item_def_id"] == item)
        .filter_map(|x| x["quantity"].as_i64())
        .sum();
    Ok((balance, items))
}
