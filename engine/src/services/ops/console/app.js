// The asobi-rs operator console. No build step: plain DOM, fetch and polling. Every API call
// carries the session cookie (sent by the browser) and the CSRF value from its cookie.
"use strict";

const $ = (sel) => document.querySelector(sel);

function csrf() {
  const m = document.cookie.match(/(?:^|;\s*)asobi_console_csrf=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : "";
}

function status(text, isError) {
  const el = $("#status");
  el.textContent = text || "";
  el.className = isError ? "error" : "";
}

async function api(method, path, body) {
  const opts = { method, headers: { "x-csrf-token": csrf() }, credentials: "same-origin" };
  if (body !== undefined) {
    opts.headers["content-type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const res = await fetch(path, opts);
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (_) { json = null; }
  if (res.status === 403 && path !== "/console/session") { showSignIn(); }
  if (!res.ok) {
    const code = json && json.error ? json.error.code : String(res.status);
    throw new Error(code);
  }
  return json === null ? text : json;
}

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "" : String(text);
  return td;
}

function fill(tbody, rows, make) {
  tbody.replaceChildren(...rows.map(make));
}

function button(label, cls, onClick) {
  const b = document.createElement("button");
  b.textContent = label;
  b.className = cls;
  b.addEventListener("click", onClick);
  return b;
}

async function refresh() {
  try {
    const [stats, shards, live, queues, records, reloads, metrics, tournaments] = await Promise.all([
      api("GET", "/api/v1/ops/stats"),
      api("GET", "/api/v1/ops/shards"),
      api("GET", "/api/v1/ops/matches/live?limit=200"),
      api("GET", "/api/v1/ops/matchmaker"),
      api("GET", "/api/v1/ops/matches?limit=10"),
      api("GET", "/api/v1/ops/reloads"),
      fetch("/metrics").then((r) => r.text()),
      api("GET", "/api/v1/ops/tournaments?limit=50"),
    ]);
    const s = stats.data;
    const dl = $("#overview");
    dl.replaceChildren();
    for (const [k, v] of Object.entries({ node: s.node, online_players: s.online_players,
      live_matches: s.live_matches, shards: s.scheduler_count, uptime_s: Math.round(s.uptime_ms / 1000),
      version: s.version, draining: s.draining })) {
      const dt = document.createElement("dt"); dt.textContent = k;
      const dd = document.createElement("dd"); dd.textContent = String(v); dd.id = "stat-" + k;
      dl.append(dt, dd);
    }
    fill($("#shards tbody"), shards.data, (r) => {
      const tr = document.createElement("tr");
      tr.append(cell(r.shard), cell(r.alive), cell(r.gauges.connections), cell(r.gauges.sessions),
        cell(r.gauges.matches), cell(r.gauges.mesh_backlog), cell(r.counters.ws_messages_in),
        cell(r.counters.ws_messages_out), cell(r.counters.ticks));
      return tr;
    });
    fill($("#live-matches tbody"), live.data, (m) => {
      const tr = document.createElement("tr");
      tr.dataset.matchId = m.match_id;
      const td = document.createElement("td");
      td.append(button("End", "end-match", async () => {
        try { await api("POST", `/api/v1/ops/matches/${encodeURIComponent(m.match_id)}/end`, {}); status(`ended ${m.match_id}`); }
        catch (e) { status(`end failed: ${e.message}`, true); }
        refresh();
      }));
      tr.append(cell(m.match_id), cell(m.mode), cell(m.status), cell((m.players || []).join(", ")), cell(m.shard), td);
      return tr;
    });
    fill($("#queues tbody"), queues.data, (q) => {
      const tr = document.createElement("tr");
      tr.append(cell(q.mode), cell(q.waiting), cell(q.oldest_wait_ms));
      return tr;
    });
    fill($("#records tbody"), records.data, (r) => {
      const tr = document.createElement("tr");
      tr.append(cell(r.id), cell(r.mode), cell(r.status), cell(new Date(r.finished_at).toISOString()));
      return tr;
    });
    fill($("#tournaments tbody"), tournaments.data, (t) => {
      const tr = document.createElement("tr");
      tr.dataset.tournamentId = t.id;
      tr.append(cell(t.id), cell(t.name), cell(t.leaderboard_id), cell(t.status), cell(t.live),
        cell(t.entrants), cell(new Date(t.end_at).toISOString()));
      return tr;
    });
    $("#reloads").replaceChildren(...reloads.data.map((r) => {
      const li = document.createElement("li");
      li.textContent = `version ${r.version} at ${new Date(r.at_ms).toISOString()}`;
      return li;
    }));
    $("#metrics").textContent = metrics.split("\n").filter((l) => !l.startsWith("#")).slice(0, 80).join("\n");
  } catch (e) {
    status(`refresh failed: ${e.message}`, true);
  }
}

async function loadPlayers() {
  const q = $("#player-q").value.trim();
  try {
    const res = await api("GET", `/api/v1/ops/players?limit=50${q ? "&q=" + encodeURIComponent(q) : ""}`);
    fill($("#players tbody"), res.data, (p) => {
      const tr = document.createElement("tr");
      tr.dataset.playerId = p.id;
      const td = document.createElement("td");
      td.append(
        button("Kick", "kick", async () => {
          try { const r = await api("POST", `/api/v1/ops/players/${p.id}/kick`, { reason: "kicked from console" });
            status(r.data.kicked ? `kicked ${p.username}` : `${p.username} was not online`); }
          catch (e) { status(`kick failed: ${e.message}`, true); }
        }),
        button(p.banned ? "Unban" : "Ban", "ban", async () => {
          try { await api(p.banned ? "DELETE" : "POST", `/api/v1/ops/players/${p.id}/ban`, p.banned ? undefined : { reason: "banned from console" });
            status(`${p.banned ? "unbanned" : "banned"} ${p.username}`); }
          catch (e) { status(`ban failed: ${e.message}`, true); }
          loadPlayers();
        }),
        button("Grant…", "grant", () => { $("#grant-player").value = p.id; $("#grant-currency").focus(); }),
        button("Notify…", "notify", () => { $("#notify-player").value = p.id; $("#notify-subject").focus(); }),
      );
      tr.append(cell(p.id), cell(p.username), cell(p.banned), td);
      return tr;
    });
  } catch (e) {
    status(`players failed: ${e.message}`, true);
  }
}

let timer = null;

function showSignIn() {
  if (timer) { clearInterval(timer); timer = null; }
  $("#app-view").hidden = true;
  $("#signout").hidden = true;
  $("#signin-view").hidden = false;
  $("#who").textContent = "";
}

async function showApp() {
  const who = await api("GET", "/console/session");
  $("#who").textContent = `signed in as ${who.data.display}`;
  if (who.data.label) {
    $("#deployment").textContent = who.data.label;
    $("#deployment").className = who.data.production ? "production" : "";
    document.title = `asobi-rs console — ${who.data.label}`;
  }
  $("#signin-view").hidden = true;
  $("#app-view").hidden = false;
  $("#signout").hidden = false;
  await Promise.all([refresh(), loadPlayers()]);
  if (!timer) { timer = setInterval(refresh, 2000); }
}

document.addEventListener("DOMContentLoaded", () => {
  $("#signin-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await api("POST", "/console/session", { secret: $("#secret").value, label: $("#label").value });
      $("#secret").value = "";
      status("");
      await showApp();
    } catch (e) {
      status(`sign-in refused (${e.message})`, true);
    }
  });
  $("#signout").addEventListener("click", async () => {
    try { await api("DELETE", "/console/session"); } catch (_) { /* already gone */ }
    showSignIn();
  });
  $("#player-search").addEventListener("submit", (ev) => { ev.preventDefault(); loadPlayers(); });
  $("#grant-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const out = $("#grant-result");
    try {
      const r = await api("POST", `/api/v1/ops/players/${encodeURIComponent($("#grant-player").value.trim())}/wallets/grant`, {
        currency: $("#grant-currency").value.trim(),
        amount: Number($("#grant-amount").value),
        reason: $("#grant-reason").value.trim() || undefined,
      });
      out.textContent = `granted: balance ${r.data.wallet.balance} ${r.data.wallet.currency}`;
      out.className = "ok";
    } catch (e) {
      out.textContent = `grant failed: ${e.message}`;
      out.className = "error";
    }
  });
  $("#notify-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const out = $("#notify-result");
    try {
      const r = await api("POST", `/api/v1/ops/players/${encodeURIComponent($("#notify-player").value.trim())}/notifications`, {
        type: $("#notify-type").value.trim() || undefined,
        subject: $("#notify-subject").value.trim(),
      });
      out.textContent = `sent: ${r.data.type} "${r.data.subject}" (${r.data.id})`;
      out.className = "ok";
    } catch (e) {
      out.textContent = `send failed: ${e.message}`;
      out.className = "error";
    }
  });
  showApp().catch(() => showSignIn());
});
