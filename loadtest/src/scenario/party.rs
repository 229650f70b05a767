//! `party`: P players in parties of 1–4 queue for a team mode (the example game's `squad`,
//! a 4v4) over real sockets. Each party forms the way a client forms one: the leader sends
//! `party.create` (invite-only, sized to the party), `party.invite`s every member, each member
//! answers the `party.invited` push with `party.accept`. Once every party stands, players
//! arrive in the queue at a fixed rate (default 50 players/s, as the simulated run in
//! `bench-results/parties-matchmaking.md`): a solo sends `matchmaker.add` with its `skill`,
//! a leader sends `party.queue` with each member's rating under `skills`.
//!
//! Measured: matchmaking wait per player (the queue request leaving the client → that
//! player's `match.matched`; for a party member, from the leader's request), overall and per
//! party size; per match the team gap (|mean rating of team A − team B|, from the `teams`
//! map of `match.matched`) and spread (highest − lowest rating); and the checks the
//! matchmaker promises: no party split over matches or teams, no player matched twice.
//! Ratings and party sizes come from a seeded generator, so every run queues the same
//! players with the same ratings in the same order.
//!
//! One client process: every wait is measured on one clock.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::time::Instant;

use super::{open_waves, phase, put, thousands, CpuMeter, RunSpec};
use crate::result::{round3, Run};
use crate::runner::{self, Counter, Metric, Session, Worker};
use crate::{proto, ws::WsError};

/// The default mix: shares (percent) of parties of 1, 2, 3 and 4 players.
pub const DEFAULT_MIX: [u32; 4] = [50, 25, 15, 10];
/// Largest party the scenario forms (the `squad` mode's team size).
pub const MAX_PARTY: usize = 4;
/// How long one party step (create, invite, accept) may take before the party counts failed.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// Parameters of `party`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PartyParams {
    /// Players (one socket and one account each).
    pub players: usize,
    /// Weights of party sizes 1, 2, 3 and 4 (`[1, 0, 0, 0]` = solos only).
    pub mix: [u32; 4],
    /// Game mode to queue (a team mode).
    pub mode: String,
    /// Players arriving in the queue per second.
    pub arrival_rate: f64,
    /// Seed of party sizes and ratings.
    pub seed: u64,
    /// Mean player rating.
    pub rating_mean: f64,
    /// Standard deviation of player ratings.
    pub rating_sd: f64,
    /// Connections per wave.
    pub wave: usize,
    /// Pause between waves (ms).
    pub wave_ms: u64,
    /// Seconds after the last arrival allowed for every ticket to match or expire.
    pub settle_s: f64,
}

impl PartyParams {
    /// True when every party is a solo.
    pub fn solos_only(&self) -> bool {
        self.mix[1..].iter().all(|w| *w == 0)
    }
}

/// One party of the plan: players `first..first + size`, queueing `arrive` after the start.
#[derive(Debug, Clone, PartialEq)]
struct Group {
    first: usize,
    size: usize,
    arrive: Duration,
}

/// Who plays, with whom, rated how, arriving when: drawn from the seed alone.
#[derive(Debug, Clone)]
struct Plan {
    groups: Vec<Group>,
    /// Group index of each player.
    group_of: Vec<usize>,
    ratings: Vec<f64>,
}

/// splitmix64: small, seedable, good enough for drawing sizes and ratings.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// Close to normal with σ = 1 (Irwin–Hall: twelve uniforms, as the simulated run).
    fn normal(&mut self) -> f64 {
        (0..12).map(|_| self.unit()).sum::<f64>() - 6.0
    }
}

impl Plan {
    fn new(p: &PartyParams) -> Plan {
        let mut rng = Rng(p.seed);
        let total: u64 = p.mix.iter().map(|w| u64::from(*w)).sum::<u64>().max(1);
        let rate = p.arrival_rate.max(0.001);
        let mut groups = Vec::new();
        let mut group_of = Vec::with_capacity(p.players);
        let mut ratings = Vec::with_capacity(p.players);
        let mut first = 0;
        while first < p.players {
            let mut pick = rng.below(total);
            let mut size = 1;
            for w in p.mix {
                let w = u64::from(w);
                if pick < w {
                    break;
                }
                pick -= w;
                size += 1;
            }
            let size = size.min(MAX_PARTY).min(p.players - first);
            for _ in 0..size {
                group_of.push(groups.len());
                ratings.push(p.rating_mean + p.rating_sd * rng.normal());
            }
            groups.push(Group {
                first,
                size,
                arrive: Duration::from_secs_f64(first as f64 / rate),
            });
            first += size;
        }
        Plan {
            groups,
            group_of,
            ratings,
        }
    }
}

/// What a player saw of its match.
#[derive(Debug, Clone)]
struct Outcome {
    match_id: String,
    team: Option<u64>,
    wait: Duration,
}

/// A match as its `match.matched` described it.
#[derive(Debug, Clone)]
struct MatchSeen {
    players: Vec<String>,
    teams: HashMap<String, u64>,
}

/// Per group: its party id, members who accepted, when it queued, how it ended.
#[derive(Debug, Default, Clone)]
struct GroupState {
    party_id: Option<String>,
    accepted: usize,
    ready: bool,
    failed: bool,
    queued_at: Option<Instant>,
    expired: bool,
}

/// What every player task writes and the coordinator reads.
struct Board {
    plan: Plan,
    ids: Vec<Option<String>>,
    groups: Vec<GroupState>,
    /// Each player's `match.matched` frames (more than one = matched twice).
    outcomes: Vec<Vec<Outcome>>,
    matches: HashMap<String, MatchSeen>,
    go: Option<Instant>,
}

impl Board {
    fn ready_or_failed(&self) -> usize {
        self.groups
            .iter()
            .zip(&self.plan.groups)
            .filter(|(s, _)| s.ready || s.failed)
            .map(|(_, g)| g.size)
            .sum()
    }

    /// Players that matched or whose ticket expired or failed.
    fn resolved(&self) -> usize {
        self.plan
            .groups
            .iter()
            .enumerate()
            .map(|(gi, g)| {
                let st = &self.groups[gi];
                if st.failed || st.expired {
                    g.size
                } else {
                    (g.first..g.first + g.size)
                        .filter(|&i| !self.outcomes[i].is_empty())
                        .count()
                }
            })
            .sum()
    }
}

type SharedBoard = Arc<Mutex<Board>>;

fn lock(b: &SharedBoard) -> std::sync::MutexGuard<'_, Board> {
    b.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs the scenario.
pub async fn run(spec: &RunSpec, p: &PartyParams) -> anyhow::Result<Run> {
    if spec.wire != crate::conn::Wire::Json {
        anyhow::bail!(
            "party speaks the JSON wire only (party.* frames have no FlatBuffers form in the tool)"
        );
    }
    let plan = Plan::new(p);
    let n = p.players;
    let board: SharedBoard = Arc::new(Mutex::new(Board {
        ids: vec![None; n],
        groups: vec![GroupState::default(); plan.groups.len()],
        outcomes: vec![Vec::new(); n],
        matches: HashMap::new(),
        go: None,
        plan: plan.clone(),
    }));
    let (shared, pool, mut mon) = spec.start(Metric::Matchmaking)?;
    let params = Arc::new(p.clone());
    let t_form = Instant::now();
    open_waves(&pool, &mut mon, 0..n, p.wave, p.wave_ms, &|idx| {
        let params = params.clone();
        let board = board.clone();
        Box::new(move |w: Rc<Worker>| {
            tokio::task::spawn_local(player(w, idx, params, board));
        })
    })
    .await;
    mon.wait_until(Duration::from_secs(300), |_| {
        lock(&board).ready_or_failed() >= n
    })
    .await;
    let formed_s = t_form.elapsed().as_secs_f64();
    let cpu = CpuMeter::start(spec.server.pid);
    lock(&board).go = Some(Instant::now());
    shared.set_phase(phase::GO);
    let last_arrival = plan.groups.last().map_or(Duration::ZERO, |g| g.arrive);
    mon.wait_until(last_arrival + Duration::from_secs_f64(p.settle_s), |_| {
        lock(&board).resolved() >= n
    })
    .await;
    let cpu = cpu.stop();
    pool.fold().await;
    mon.tick();
    shared.set_phase(phase::STOP);
    tokio::time::sleep(Duration::from_millis(500)).await;
    pool.stop();

    let b = lock(&board);
    let fig = figures(&b, p);
    drop(b);
    let mut f = fig;
    f.insert("party_forming_s".into(), round3(formed_s).into());
    f.insert(
        "connections_failed".into(),
        shared.count(Counter::Failed).into(),
    );
    f.insert(
        "connections_dropped".into(),
        shared.count(Counter::Dropped).into(),
    );
    f.insert("error_frames".into(), shared.count(Counter::Errors).into());
    f.insert(
        "server_cores_busy".into(),
        json!(cpu.server_util.map(round3)),
    );
    let num = |k: &str| f.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
    let headline = format!(
        "{} players ({}) queue {} at {}/s: {} matched in {} matches, wait p50 {:.0} p99 {:.0} ms, team gap p50 {:.0} p99 {:.0}, {} parties split, {} players matched twice",
        thousands(n as f64),
        mix_label(p),
        p.mode,
        p.arrival_rate,
        thousands(num("matched_players")),
        thousands(num("matches")),
        num("wait_p50_ms"),
        num("wait_p99_ms"),
        num("team_gap_p50"),
        num("team_gap_p99"),
        num("parties_split"),
        num("players_matched_twice"),
    );
    Ok(spec.finish(
        &shared,
        mon,
        cpu,
        f,
        &[
            (Metric::Matchmaking, "matchmaking"),
            (Metric::Connect, "connect"),
        ],
        headline,
    ))
}

/// `solos` or the mix as percentages of parties, e.g. `50/25/15/10`.
pub fn mix_label(p: &PartyParams) -> String {
    if p.solos_only() {
        "solos".into()
    } else {
        p.mix
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join("/")
    }
}

/// The `q` quantile of `v` (nearest rank; `v` sorted).
fn quantile(v: &[f64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
    v.get(i).copied()
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// Every figure the board supports.
fn figures(b: &Board, p: &PartyParams) -> Map<String, Value> {
    let plan = &b.plan;
    let mut f = Map::new();
    let mut by_size = [0u64; MAX_PARTY];
    for g in &plan.groups {
        if let Some(c) = by_size.get_mut(g.size - 1) {
            *c += 1;
        }
    }
    f.insert("mix".into(), mix_label(p).into());
    f.insert("players".into(), (p.players as u64).into());
    f.insert("parties_by_size".into(), json!(by_size));
    let ready: usize = plan
        .groups
        .iter()
        .zip(&b.groups)
        .filter(|(_, s)| s.ready)
        .map(|(g, _)| g.size)
        .sum();
    f.insert("players_in_formed_parties".into(), (ready as u64).into());
    f.insert(
        "parties_failed_to_form".into(),
        (b.groups.iter().filter(|s| s.failed).count() as u64).into(),
    );
    let expired: usize = plan
        .groups
        .iter()
        .zip(&b.groups)
        .filter(|(_, s)| s.expired)
        .map(|(g, _)| g.size)
        .sum();
    f.insert("expired_players".into(), (expired as u64).into());
    let matched = b.outcomes.iter().filter(|o| !o.is_empty()).count();
    f.insert("matched_players".into(), (matched as u64).into());
    f.insert("matches".into(), (b.matches.len() as u64).into());
    f.insert(
        "players_unresolved".into(),
        (p.players.saturating_sub(b.resolved()) as u64).into(),
    );

    // Waits, overall and per party size.
    let mut waits: Vec<f64> = Vec::new();
    let mut waits_by_size: Vec<Vec<f64>> = vec![Vec::new(); MAX_PARTY];
    for (i, o) in b.outcomes.iter().enumerate() {
        if let Some(first) = o.first() {
            let ms = first.wait.as_secs_f64() * 1000.0;
            waits.push(ms);
            let size = plan.groups[plan.group_of[i]].size;
            if let Some(v) = waits_by_size.get_mut(size - 1) {
                v.push(ms);
            }
        }
    }
    let waits = sorted(waits);
    for (k, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0)] {
        put(
            &mut f,
            &format!("wait_{k}_ms"),
            quantile(&waits, q).map(round3),
        );
    }
    let mut per_size = Map::new();
    for (i, v) in waits_by_size.into_iter().enumerate() {
        let v = sorted(v);
        if !v.is_empty() {
            per_size.insert(
                format!("{}", i + 1),
                json!({
                    "players": v.len(),
                    "wait_p50_ms": quantile(&v, 0.5).map(round3),
                    "wait_p99_ms": quantile(&v, 0.99).map(round3),
                }),
            );
        }
    }
    f.insert("wait_by_party_size".into(), Value::Object(per_size));

    // Balance, per match, from the teams `match.matched` carried.
    let index: HashMap<&str, usize> = b
        .ids
        .iter()
        .enumerate()
        .filter_map(|(i, id)| id.as_deref().map(|s| (s, i)))
        .collect();
    let mut gaps = Vec::new();
    let mut spreads = Vec::new();
    let mut without_teams = 0u64;
    for m in b.matches.values() {
        let rated: Vec<(f64, Option<u64>)> = m
            .players
            .iter()
            .filter_map(|p| {
                index
                    .get(p.as_str())
                    .map(|&i| (plan.ratings[i], m.teams.get(p).copied()))
            })
            .collect();
        let hi = rated.iter().map(|r| r.0).fold(f64::MIN, f64::max);
        let lo = rated.iter().map(|r| r.0).fold(f64::MAX, f64::min);
        if !rated.is_empty() {
            spreads.push(hi - lo);
        }
        let mean = |team: u64| {
            let v: Vec<f64> = rated
                .iter()
                .filter(|r| r.1 == Some(team))
                .map(|r| r.0)
                .collect();
            (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
        };
        match (mean(0), mean(1)) {
            (Some(a), Some(c)) => gaps.push((a - c).abs()),
            _ => without_teams += 1,
        }
    }
    let (gaps, spreads) = (sorted(gaps), sorted(spreads));
    put(&mut f, "team_gap_p50", quantile(&gaps, 0.5).map(round3));
    put(&mut f, "team_gap_p99", quantile(&gaps, 0.99).map(round3));
    put(
        &mut f,
        "match_spread_p50",
        quantile(&spreads, 0.5).map(round3),
    );
    put(
        &mut f,
        "match_spread_p99",
        quantile(&spreads, 0.99).map(round3),
    );
    f.insert("matches_without_two_teams".into(), without_teams.into());

    // The promises: no party split, no player in two matches.
    let twice_by_frames = b.outcomes.iter().filter(|o| o.len() > 1).count();
    let mut seats: HashMap<&str, usize> = HashMap::new();
    for m in b.matches.values() {
        for p in &m.players {
            *seats.entry(p.as_str()).or_default() += 1;
        }
    }
    let twice_by_rosters = seats.values().filter(|c| **c > 1).count();
    f.insert(
        "players_matched_twice".into(),
        (twice_by_frames.max(twice_by_rosters) as u64).into(),
    );
    let mut split = 0u64;
    let mut partial = 0u64;
    for g in plan.groups.iter().filter(|g| g.size > 1) {
        let seen: Vec<(&str, Option<u64>)> = (g.first..g.first + g.size)
            .filter_map(|i| b.outcomes[i].first())
            .map(|o| (o.match_id.as_str(), o.team))
            .collect();
        if seen.is_empty() {
            continue;
        }
        if seen.len() < g.size {
            partial += 1;
        }
        if seen.iter().any(|s| *s != seen[0]) {
            split += 1;
        }
    }
    f.insert("parties_split".into(), split.into());
    f.insert("parties_partly_matched".into(), partial.into());
    f
}

/// Frames a player task acts on; the rest (`match.state`, `party.updated`) are only counted.
#[derive(Debug)]
enum Ev {
    /// A reply to one of our requests (type and cid echoed).
    Reply {
        cid: u64,
        payload: Value,
    },
    /// An `error` frame, with its cid when it answers a request.
    Error {
        cid: Option<u64>,
        code: String,
    },
    Invited {
        party_id: String,
    },
    Matched(Value),
    Expired,
}

/// A player's socket with the frames read but not yet acted on.
struct Link {
    w: Rc<Worker>,
    s: Session,
    pending: VecDeque<Ev>,
    cid: u64,
    buf: Vec<u8>,
}

impl Link {
    fn send(&mut self, kind: &str, payload: Value) -> u64 {
        self.cid += 1;
        self.buf.clear();
        let frame = json!({"type": kind, "cid": self.cid.to_string(), "payload": payload});
        let _ = serde_json::to_writer(&mut self.buf, &frame);
        self.s.conn.queue_text(&self.buf);
        self.w.add(Counter::Out, 1);
        self.cid
    }

    /// Reads until `deadline`; frames worth acting on go to `pending`.
    async fn pump(&mut self, deadline: Instant) -> Result<(), WsError> {
        let mut got = 0u64;
        let pending = &mut self.pending;
        let r = self
            .s
            .conn
            .pump(Some(deadline), |msg| {
                got += 1;
                let Some(env) = proto::scan(msg) else { return };
                let parse = |p: Option<&[u8]>| {
                    p.and_then(|p| serde_json::from_slice::<Value>(p).ok())
                        .unwrap_or(Value::Null)
                };
                match env.ty {
                    Some(b"match.matched") => pending.push_back(Ev::Matched(parse(env.payload))),
                    Some(b"match.matchmaker_expired") => pending.push_back(Ev::Expired),
                    Some(b"party.invited") => {
                        if let Some(id) = parse(env.payload)["party_id"].as_str() {
                            pending.push_back(Ev::Invited {
                                party_id: id.to_owned(),
                            });
                        }
                    }
                    Some(b"error") => pending.push_back(Ev::Error {
                        cid: env.cid_u64(),
                        code: proto::error_code(env.payload),
                    }),
                    _ => {
                        if let Some(cid) = env.cid_u64() {
                            pending.push_back(Ev::Reply {
                                cid,
                                payload: parse(env.payload),
                            });
                        }
                    }
                }
            })
            .await;
        self.w.add(Counter::In, got);
        r.map(|_| ())
    }

    /// Waits up to `within` for the first pending frame `take` accepts (and returns what it
    /// made of it); other frames stay pending. `Err` names why not.
    async fn wait<T>(
        &mut self,
        within: Duration,
        mut take: impl FnMut(&Ev) -> Option<T>,
    ) -> Result<T, String> {
        let until = Instant::now() + within;
        loop {
            if let Some(i) = self.pending.iter().position(|e| take(e).is_some()) {
                let ev = self.pending.remove(i).ok_or("gone")?;
                return take(&ev).ok_or_else(|| "gone".to_string());
            }
            if Instant::now() >= until {
                return Err("timed out".into());
            }
            let step = (Instant::now() + Duration::from_millis(20)).min(until);
            self.pump(step).await.map_err(|e| self.dropped(&e))?;
        }
    }

    /// Reads for a moment (while waiting on another player's progress).
    async fn read_a_little(&mut self) -> Result<(), String> {
        let step = Instant::now() + Duration::from_millis(20);
        self.pump(step).await.map_err(|e| self.dropped(&e))
    }

    fn dropped(&self, e: &WsError) -> String {
        runner::note_drop(&self.w, e);
        format!("dropped: {e}")
    }

    /// The reply to request `cid` (or its error's code).
    async fn reply(&mut self, cid: u64) -> Result<Value, String> {
        self.wait(STEP_TIMEOUT, |e| match e {
            Ev::Reply { cid: c, payload } if *c == cid => Some(Ok(payload.clone())),
            Ev::Error { cid: Some(c), code } if *c == cid => Some(Err(code.clone())),
            _ => None,
        })
        .await?
    }
}

/// One player's life: connect; form its party; at its arrival time queue (solo or leader);
/// record the `match.matched` it gets; read until STOP.
async fn player(w: Rc<Worker>, idx: usize, p: Arc<PartyParams>, board: SharedBoard) {
    let Some(s) = runner::open(&w, idx).await else {
        fail_group(&board, idx);
        return;
    };
    let me = s.player_id.clone();
    let (gi, group) = {
        let mut b = lock(&board);
        if let Some(slot) = b.ids.get_mut(idx) {
            *slot = Some(me.clone());
        }
        let gi = b.plan.group_of[idx];
        (gi, b.plan.groups[gi].clone())
    };
    let mut link = Link {
        w: w.clone(),
        s,
        pending: VecDeque::new(),
        cid: 10,
        buf: Vec::with_capacity(256),
    };
    let leader = idx == group.first;
    let formed = if group.size == 1 {
        Ok(())
    } else if leader {
        lead(&mut link, &board, gi, &group).await
    } else {
        follow(&mut link, &board, gi).await
    };
    if let Err(e) = formed {
        w.shared.note_error(format!("party: {e}"));
        fail_group(&board, idx);
        link.s.conn.close().await;
        return;
    }
    if group.size == 1 {
        lock(&board).groups[gi].ready = true;
    }
    // Wait for the start, reading whatever the party pushes meanwhile.
    while !w.phase_at_least(phase::GO) {
        if let Err(e) = link.pump(Instant::now() + Duration::from_millis(50)).await {
            link.dropped(&e);
            return;
        }
        link.pending.retain(|e| matches!(e, Ev::Matched(_)));
    }
    let go = lock(&board).go.unwrap_or_else(Instant::now);
    if leader {
        let arrive = go + group.arrive;
        while Instant::now() < arrive {
            if let Err(e) = link.pump(arrive).await {
                link.dropped(&e);
                return;
            }
        }
        if let Err(e) = queue(&mut link, &board, gi, &group, &p).await {
            w.shared.note_error(format!("queue: {e}"));
            w.add(Counter::Errors, 1);
            lock(&board).groups[gi].failed = true;
        }
    }
    // Until STOP: note the match (and any expiry), count everything else.
    loop {
        if w.phase_at_least(phase::STOP) {
            break;
        }
        while let Some(ev) = link.pending.pop_front() {
            match ev {
                Ev::Matched(m) => matched(&w, &board, idx, gi, &m),
                Ev::Expired => lock(&board).groups[gi].expired = true,
                Ev::Error { code, .. } => {
                    w.add(Counter::Errors, 1);
                    w.shared.note_error(format!("error frame: {code}"));
                }
                _ => {}
            }
        }
        if let Err(e) = link.pump(Instant::now() + Duration::from_millis(100)).await {
            link.dropped(&e);
            return;
        }
    }
    link.s.conn.close().await;
}

fn fail_group(board: &SharedBoard, idx: usize) {
    let mut b = lock(board);
    let gi = b.plan.group_of[idx];
    b.groups[gi].failed = true;
}

/// Leader: create an invite-only party sized to the group, invite every member once their ids
/// are known, wait until all accepted.
async fn lead(link: &mut Link, board: &SharedBoard, gi: usize, g: &Group) -> Result<(), String> {
    let cid = link.send(
        "party.create",
        json!({"privacy": "invite_only", "max_size": g.size}),
    );
    let v = link.reply(cid).await?;
    let party_id = v["party_id"]
        .as_str()
        .ok_or("party.create answered no party_id")?
        .to_owned();
    let members = wait_ids(link, board, g).await?;
    lock(board).groups[gi].party_id = Some(party_id.clone());
    for m in members.iter().skip(1) {
        let cid = link.send(
            "party.invite",
            json!({"party_id": party_id, "player_id": m}),
        );
        link.reply(cid).await?;
    }
    let until = Instant::now() + STEP_TIMEOUT;
    loop {
        {
            let mut b = lock(board);
            let st = &mut b.groups[gi];
            if st.failed {
                return Err("a member failed".into());
            }
            if st.accepted + 1 >= g.size {
                st.ready = true;
                return Ok(());
            }
        }
        if Instant::now() >= until {
            return Err("members did not accept in time".into());
        }
        link.read_a_little().await?;
    }
}

/// Every member's player id, once all have connected (leader first).
async fn wait_ids(link: &mut Link, board: &SharedBoard, g: &Group) -> Result<Vec<String>, String> {
    let until = Instant::now() + STEP_TIMEOUT;
    loop {
        {
            let b = lock(board);
            if b.groups[b.plan.group_of[g.first]].failed {
                return Err("a member failed to connect".into());
            }
            let ids: Option<Vec<String>> = (g.first..g.first + g.size)
                .map(|i| b.ids.get(i).cloned().flatten())
                .collect();
            if let Some(ids) = ids {
                return Ok(ids);
            }
        }
        if Instant::now() >= until {
            return Err("members did not connect in time".into());
        }
        link.read_a_little().await?;
    }
}

/// Member: accept the invitation the leader sends.
async fn follow(link: &mut Link, board: &SharedBoard, gi: usize) -> Result<(), String> {
    let within = STEP_TIMEOUT * 2;
    let party_id = link
        .wait(within, |e| match e {
            Ev::Invited { party_id } => Some(party_id.clone()),
            _ => None,
        })
        .await?;
    let cid = link.send("party.accept", json!({"party_id": party_id}));
    let v = link.reply(cid).await?;
    if v["party_id"] != party_id.as_str() {
        return Err(format!("party.accept answered {v}"));
    }
    lock(board).groups[gi].accepted += 1;
    Ok(())
}

/// Solo: `matchmaker.add` with its skill. Leader: `party.queue` with every member's rating.
async fn queue(
    link: &mut Link,
    board: &SharedBoard,
    gi: usize,
    g: &Group,
    p: &PartyParams,
) -> Result<(), String> {
    let (kind, payload) = {
        let b = lock(board);
        let rating = |i: usize| b.plan.ratings[i].round();
        if g.size == 1 {
            (
                "matchmaker.add",
                json!({"mode": p.mode, "properties": {"skill": rating(g.first)}}),
            )
        } else {
            let skills: Map<String, Value> = (g.first..g.first + g.size)
                .filter_map(|i| b.ids[i].clone().map(|id| (id, json!(rating(i)))))
                .collect();
            (
                "party.queue",
                json!({
                    "party_id": b.groups[gi].party_id,
                    "mode": p.mode,
                    "properties": {"skills": skills},
                }),
            )
        }
    };
    // The wait starts as the request leaves; members read the same instant from the board.
    lock(board).groups[gi].queued_at = Some(Instant::now());
    let cid = link.send(kind, payload);
    link.reply(cid).await.map(|_| ())
}

/// Records a `match.matched`: the player's wait and team, and the match's roster.
fn matched(w: &Worker, board: &SharedBoard, idx: usize, gi: usize, m: &Value) {
    let now = Instant::now();
    let me = {
        let b = lock(board);
        b.ids[idx].clone().unwrap_or_default()
    };
    let match_id = m["match_id"].as_str().unwrap_or_default().to_owned();
    let teams: HashMap<String, u64> = m["teams"]
        .as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| v.as_u64().map(|t| (k.clone(), t)))
                .collect()
        })
        .unwrap_or_default();
    let players: Vec<String> = m["players"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let mut b = lock(board);
    let Some(queued) = b.groups[gi].queued_at else {
        w.shared
            .note_error("match.matched before the party queued".into());
        return;
    };
    let wait = now.saturating_duration_since(queued);
    w.record_dur(Metric::Matchmaking, wait);
    b.outcomes[idx].push(Outcome {
        match_id: match_id.clone(),
        team: teams.get(&me).copied(),
        wait,
    });
    b.matches
        .entry(match_id)
        .or_insert(MatchSeen { players, teams });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(mix: [u32; 4]) -> PartyParams {
        PartyParams {
            players: 2000,
            mix,
            mode: "squad".into(),
            arrival_rate: 50.0,
            seed: 0x5EED,
            rating_mean: 1000.0,
            rating_sd: 200.0,
            wave: 200,
            wave_ms: 100,
            settle_s: 90.0,
        }
    }

    #[test]
    fn the_plan_is_seeded_and_covers_every_player_once() {
        let p = params(DEFAULT_MIX);
        let (a, b) = (Plan::new(&p), Plan::new(&p));
        assert_eq!(a.groups, b.groups);
        assert_eq!(a.ratings, b.ratings);
        assert_eq!(a.group_of.len(), 2000);
        let mut next = 0;
        for (gi, g) in a.groups.iter().enumerate() {
            assert_eq!(g.first, next);
            assert!((1..=MAX_PARTY).contains(&g.size));
            for i in g.first..g.first + g.size {
                assert_eq!(a.group_of[i], gi);
            }
            next += g.size;
        }
        assert_eq!(next, 2000);
        // The mix shows: about half the parties are solos, about a tenth are quads.
        let share = |s: usize| {
            a.groups.iter().filter(|g| g.size == s).count() as f64 / a.groups.len() as f64
        };
        assert!((0.4..0.6).contains(&share(1)), "{}", share(1));
        assert!((0.05..0.15).contains(&share(4)), "{}", share(4));
        // Ratings centre on the mean with the asked spread.
        let mean = a.ratings.iter().sum::<f64>() / 2000.0;
        let sd = (a.ratings.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / 2000.0).sqrt();
        assert!((mean - 1000.0).abs() < 20.0, "{mean}");
        assert!((sd - 200.0).abs() < 20.0, "{sd}");
        // 50 players a second: the last arrives about 40 s in.
        let last = a.groups.last().unwrap().arrive.as_secs_f64();
        assert!((39.0..40.0).contains(&last), "{last}");
    }

    #[test]
    fn solos_only_is_all_ones() {
        let p = params([1, 0, 0, 0]);
        assert!(p.solos_only());
        assert_eq!(mix_label(&p), "solos");
        assert!(Plan::new(&p).groups.iter().all(|g| g.size == 1));
        assert_eq!(mix_label(&params(DEFAULT_MIX)), "50/25/15/10");
    }

    #[test]
    fn split_and_twice_are_counted() {
        let p = params([0, 1, 0, 0]);
        let p = PartyParams { players: 4, ..p };
        let plan = Plan::new(&p);
        assert_eq!(plan.groups.len(), 2);
        let o = |m: &str, t: u64| Outcome {
            match_id: m.into(),
            team: Some(t),
            wait: Duration::from_millis(10),
        };
        let b = Board {
            ids: (0..4).map(|i| Some(format!("p{i}"))).collect(),
            groups: vec![GroupState::default(); 2],
            // Party 0 together; party 1 split over teams; p3 matched twice.
            outcomes: vec![
                vec![o("m", 0)],
                vec![o("m", 0)],
                vec![o("m", 1)],
                vec![o("m", 0), o("n", 0)],
            ],
            matches: [(
                "m".to_string(),
                MatchSeen {
                    players: (0..4).map(|i| format!("p{i}")).collect(),
                    teams: [("p0", 0), ("p1", 0), ("p2", 1), ("p3", 0)]
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect(),
                },
            )]
            .into_iter()
            .collect(),
            go: None,
            plan,
        };
        let f = figures(&b, &p);
        assert_eq!(f["parties_split"], 1);
        assert_eq!(f["players_matched_twice"], 1);
        assert_eq!(f["matched_players"], 4);
        assert_eq!(f["matches"], 1);
        assert!(f["team_gap_p50"].as_f64().is_some());
    }
}
