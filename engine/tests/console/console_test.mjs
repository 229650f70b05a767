// Drives the operator console in headless Chromium (playwright-core): sign in, see a live match
// appear, kick a player, grant currency, send a notification, see the tournaments. Run by engine/tests/console.rs, which starts the server
// and makes the match when this script prints READY. Every step asserts on what the page shows.
import { chromium } from "playwright-core";
import readline from "node:readline";

const base = process.env.ASOBI_URL;
const secret = process.env.ASOBI_SECRET;
const player = process.env.ASOBI_PLAYER_ID;
const username = process.env.ASOBI_PLAYER_NAME;
const executablePath = process.env.ASOBI_CHROMIUM || "/usr/bin/chromium";
const STEP = 15000;

const lines = readline.createInterface({ input: process.stdin });
const next = () => new Promise((resolve) => lines.once("line", resolve));

function fail(msg) {
  console.error(`FAIL ${msg}`);
  process.exit(1);
}

const browser = await chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-gpu"] });
try {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  // Refused requests (the 403s this script provokes, the missing favicon) are logged by the
  // browser as resource errors; anything else on the error console is a script bug.
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) errors.push(m.text());
  });

  // Without a session the page offers the sign-in form; a wrong secret is refused.
  await page.goto(`${base}/console`);
  await page.waitForSelector("#signin-view:not([hidden])", { timeout: STEP });
  await page.fill("#secret", "not-the-secret");
  await page.click("#signin");
  await page.waitForFunction(() => document.querySelector("#status").textContent.includes("sign-in refused"), null, { timeout: STEP });

  await page.fill("#secret", secret);
  await page.fill("#label", "browser-op");
  await page.click("#signin");
  await page.waitForSelector("#app-view:not([hidden])", { timeout: STEP });
  const who = await page.textContent("#who");
  if (!who.includes("browser-op")) fail(`signed-in label: ${who}`);
  // The session cookie is HttpOnly: page script cannot read it.
  const visible = await page.evaluate(() => document.cookie);
  if (visible.includes("asobi_console=")) fail("session cookie readable by script");
  if (!visible.includes("asobi_console_csrf=")) fail("no CSRF cookie");
  await page.waitForFunction(() => document.querySelectorAll("#shards tbody tr").length >= 2, null, { timeout: STEP });
  const liveBefore = await page.locator("#live-matches tbody tr").count();
  if (liveBefore !== 0) fail(`expected no live match yet, saw ${liveBefore}`);

  console.log("READY");
  const matchId = (await next()).trim();

  // The match shows up within a couple of polls.
  await page.waitForSelector(`#live-matches tbody tr[data-match-id="${matchId}"]`, { timeout: STEP });
  console.log(`SAW ${matchId}`);

  // Kick: find the player, press Kick, read the confirmation.
  await page.fill("#player-q", username);
  await page.click("#player-search button");
  const row = page.locator(`#players tbody tr[data-player-id="${player}"]`);
  await row.waitFor({ timeout: STEP });
  await row.locator("button.kick").click();
  await page.waitForFunction((u) => document.querySelector("#status").textContent === `kicked ${u}`, username, { timeout: STEP });
  console.log("KICKED");

  // Grant: the form answers with the new balance.
  await row.locator("button.grant").click();
  if ((await page.inputValue("#grant-player")) !== player) fail("grant form not filled from the row");
  await page.fill("#grant-currency", "gold");
  await page.fill("#grant-amount", "25");
  await page.fill("#grant-reason", "browser-test");
  await page.click("#grant-submit");
  await page.waitForFunction(() => document.querySelector("#grant-result").textContent.startsWith("granted:"), null, { timeout: STEP });
  const granted = await page.textContent("#grant-result");
  if (granted !== "granted: balance 25 gold") fail(`grant result: ${granted}`);
  console.log("GRANTED");

  // Notify: the form answers with what was sent (the server side checks the player got it).
  await row.locator("button.notify").click();
  if ((await page.inputValue("#notify-player")) !== player) fail("notify form not filled from the row");
  await page.fill("#notify-type", "maintenance");
  await page.fill("#notify-subject", "Console says hi");
  await page.click("#notify-submit");
  await page.waitForFunction(() => document.querySelector("#notify-result").textContent.startsWith("sent:"), null, { timeout: STEP });
  const sent = await page.textContent("#notify-result");
  if (!sent.startsWith('sent: maintenance "Console says hi"')) fail(`notify result: ${sent}`);
  console.log("NOTIFIED");

  // The running tournament is listed, live.
  const t = page.locator('#tournaments tbody tr[data-tournament-id="cup"]');
  await t.waitFor({ timeout: STEP });
  const trow = await t.textContent();
  if (!trow.includes("Console Cup") || !trow.includes("active")) fail(`tournament row: ${trow}`);
  console.log("TOURNAMENTS");

  // Signing out ends the session: the API refuses the old cookie.
  await page.click("#signout");
  await page.waitForSelector("#signin-view:not([hidden])", { timeout: STEP });
  const after = await page.evaluate(async () => (await fetch("/api/v1/ops/stats")).status);
  if (after !== 403) fail(`after sign-out the ops API answered ${after}`);

  if (errors.length) fail(`page errors: ${errors.join(" | ")}`);
  console.log("DONE");
} finally {
  await browser.close();
}
process.exit(0);
