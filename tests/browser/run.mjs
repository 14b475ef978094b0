// End-to-end tests of the web UI: playwright-core drives Debian's Chromium (headless) against a
// real `atrium serve` started here (temp data dir, port 0, tiny embedding model, web/dist).
//
// Environment: ATRIUM_BINARY (required), ATRIUM_WEB_ROOT (default ../../web/dist), CHROMIUM
// (default /usr/bin/chromium), ATRIUM_WEB_ARTIFACTS (screenshots; default ./artifacts).
// Exit status: 0 all passed, 1 a test failed, 77 skipped (no browser, no build, no binary).
//
// Flows: sign-up, keyboard navigation and labels on every page, API key created in the UI and
// used from outside (then revoked), embed playground, bus monitor, invite + second user, chat
// between two browser contexts live over SSE with search (filters), every chat type, a run
// logged by the Python SDK showing its
// chart with the filter box's error position, the relay admin creating a key (with its usage
// dashboard), and relay webhooks delivering to a local receiver (events and a test event). Every part is required: a feature whose API answers 404 fails
// its test (only a missing browser, build or binary skips the whole suite).
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startAtrium } from "./server.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const SKIP = 77;
const binary = process.env.ATRIUM_BINARY ?? "";
const webRoot = path.resolve(process.env.ATRIUM_WEB_ROOT ?? path.join(here, "../../web/dist"));
const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const artifacts = path.resolve(process.env.ATRIUM_WEB_ARTIFACTS ?? path.join(here, "artifacts"));

function skip(why) {
  console.log(`SKIP: ${why}`);
  process.exit(SKIP);
}
if (!binary || !fs.existsSync(binary)) skip(`ATRIUM_BINARY not set or missing (${binary || "unset"})`);
if (!fs.existsSync(chromiumPath)) skip(`no Chromium at ${chromiumPath} (apt-get install chromium)`);
if (!fs.existsSync(path.join(webRoot, "index.html"))) skip(`web UI not built: ${webRoot}/index.html missing (cd web && npm run build)`);
let chromium;
try {
  ({ chromium } = await import("playwright-core"));
} catch {
  skip("playwright-core not installed (cd tests/browser && npm ci)");
}

// Screenshots of this run only (stale ones from an earlier run would mislead).
for (const f of fs.existsSync(artifacts) ? fs.readdirSync(artifacts) : []) if (f.endsWith(".png")) fs.rmSync(path.join(artifacts, f));
fs.mkdirSync(artifacts, { recursive: true });
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "atrium-web-"));
const started = Date.now();
const results = [];

function assert(cond, msg) {
  if (!cond) throw new Error("assertion failed: " + msg);
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: true });
}

/** Every form control on the page has an accessible name (label, aria-label or labelledby). */
async function checkLabels(page, where) {
  const unlabelled = await page.evaluate(() => {
    const bad = [];
    for (const el of document.querySelectorAll("input, select, textarea, button")) {
      if (el.type === "hidden") continue;
      const named =
        (el.labels && el.labels.length > 0) ||
        el.getAttribute("aria-label") ||
        el.getAttribute("aria-labelledby") ||
        (el.tagName === "BUTTON" && el.textContent.trim() !== "");
      if (!named) bad.push(el.outerHTML.slice(0, 120));
    }
    return bad;
  });
  assert(unlabelled.length === 0, `${where}: controls without a label: ${unlabelled.join(" | ")}`);
  const h1 = await page.locator("h1").count();
  assert(h1 >= 1, `${where}: no h1 heading`);
}

async function api(url, method, pathname, { token, key, body } = {}) {
  const headers = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  if (key) headers.authorization = `Bearer ${key}`;
  const r = await fetch(url + pathname, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = text;
  }
  return { status: r.status, json };
}

/** Logs the "baseline" run of project "demo": 3000 loss points, 50 accuracy points, two log lines
 * and a dataset artifact, through the Python SDK (python3 >= 3.10 required). Returns its id. */
async function logBaselineRun(key) {
  const script = `
import atrium_track, math, os, tempfile
with atrium_track.init(project="demo", name="baseline", config={"lr": 0.01, "model": {"layers": 4}},
                       tags={"dataset": "mnist"}, system_interval=0) as run:
    for s in range(3000):
        run.log({"loss": 2 * math.exp(-s / 600) + 0.05 * math.sin(s) + (5 if s == 1234 else 0)}, step=s)
    for s in range(50):
        run.log({"accuracy": 1 - math.exp(-s / 10)}, step=s * 60)
    run.log_text("epoch 1 done")
    run.log_text("lr is high", level="warning")
    d = tempfile.mkdtemp()
    open(os.path.join(d, "train.csv"), "w").write("x,y\\n1,2\\n")
    run.log_artifact(d, name="mnist-sample", type="dataset", aliases=["production"])
    open(os.path.join(d, "notes.txt"), "w").write("first run")
    run.save(os.path.join(d, "notes.txt"))
print(run.id)
`;
  const { spawnSync } = await import("node:child_process");
  const sdk = path.join(here, "../../sdk/python");
  assert(fs.existsSync(path.join(sdk, "atrium_track")), `the Python SDK is missing: ${sdk}/atrium_track`);
  assert(spawnSync("python3", ["-c", "import sys; assert sys.version_info >= (3, 10)"]).status === 0, "python3 >= 3.10 is needed to log the run with the Python SDK");
  const r = spawnSync("python3", ["-c", script], {
    env: { ...process.env, PYTHONPATH: sdk, ATRIUM_URL: base, ATRIUM_API_KEY: key, PYTHONDONTWRITEBYTECODE: "1" },
    encoding: "utf8",
    timeout: 60000,
  });
  assert(r.status === 0, `python SDK run: ${r.status} ${r.stderr}`);
  const id = r.stdout.trim().split("\n").pop();
  console.log(`  (baseline run ${id} logged by the Python SDK)`);
  return id;
}

async function test(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    results.push({ name, ok: true, ms: Date.now() - t0 });
    console.log(`PASS ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    results.push({ name, ok: false, ms: Date.now() - t0, error: e });
    const n = results.length;
    for (const [who, p] of [["a", pageA], ["b", pageB]]) if (p) await shot(p, `FAILED-${n}-${who}`).catch(() => {});
    console.log(`FAIL ${name} (${Date.now() - t0} ms)\n  ${e && e.stack ? e.stack : e}`);
  }
}

let server = await startAtrium({ binary, webRoot, tmp });
const base = server.url;
console.log(`atrium serve at ${base}; artifacts in ${artifacts}`);
const browser = await chromium.launch({
  executablePath: chromiumPath,
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});

const alice = { email: "alice@example.com", password: "alice-password-1", name: "Alice" };
const bob = { email: "bob@example.com", password: "bob-password-1", name: "Bob" };
let ctxA, ctxB, pageA, pageB;
let inviteCode = "";
let aliceToken = "";
const failures = [];
const pageErrors = [];

async function newUserPage() {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await ctx.newPage();
  page.setDefaultTimeout(10000);
  page.on("pageerror", (e) => pageErrors.push(e && e.stack ? e.stack : String(e)));
  return { ctx, page };
}

async function nav(page, label) {
  // Client-side navigation; the caller waits for what it needs (no "networkidle": the chat page
  // keeps an event stream open).
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: label, exact: true }).click();
}


try {
  ({ ctx: ctxA, page: pageA } = await newUserPage());

  await test("sign-up page is labelled and signs up", async () => {
    await pageA.goto(base + "/");
    await pageA.waitForURL(/\/signin$/);
    await checkLabels(pageA, "sign-in");
    await shot(pageA, "signin");
    await pageA.getByRole("link", { name: "Create one" }).click();
    await checkLabels(pageA, "sign-up");
    await pageA.getByLabel("Name").fill(alice.name);
    await pageA.getByLabel("Email").fill(alice.email);
    await pageA.getByLabel("Password").fill(alice.password);
    await shot(pageA, "signup");
    await pageA.getByRole("button", { name: "Sign up" }).click();
    await pageA.getByRole("heading", { name: "Welcome, Alice" }).waitFor();
    await shot(pageA, "home");
    const login = await api(base, "POST", "/api/v1/auth/login", { body: { email: alice.email, password: alice.password } });
    assert(login.status === 200, "login over HTTP");
    aliceToken = login.json.access_token;
  });

  await test("session survives a reload (refresh cookie + CSRF)", async () => {
    await pageA.reload();
    await pageA.getByRole("heading", { name: "Welcome, Alice" }).waitFor();
  });

  await test("keyboard navigation: skip link, nav links, focus on page heading", async () => {
    await pageA.goto(base + "/");
    await pageA.getByRole("heading", { name: "Welcome, Alice" }).waitFor();
    // The skip link comes first in tab order: Shift+Tab from the brand link reaches it.
    await pageA.getByRole("link", { name: "Atrium", exact: true }).focus();
    await pageA.keyboard.press("Shift+Tab");
    const first = await pageA.evaluate(() => document.activeElement?.textContent);
    assert(first === "Skip to content", `the skip link is the first tab stop, got ${first}`);
    await pageA.keyboard.press("Enter");
    const inMain = await pageA.evaluate(() => document.activeElement?.id === "main" || !!document.activeElement?.closest("main"));
    assert(inMain, "skip link moves focus into main");
    // Tab forward until the "API keys" navigation link has focus, then activate it with Enter.
    let found = false;
    await pageA.evaluate(() => document.body.focus());
    for (let i = 0; i < 40 && !found; i++) {
      await pageA.keyboard.press("Tab");
      found = await pageA.evaluate(() => document.activeElement?.textContent === "API keys");
    }
    assert(found, "the API keys link is reachable with Tab");
    await pageA.keyboard.press("Enter");
    await pageA.waitForURL(/\/keys$/);
    await pageA.getByRole("heading", { name: "API keys", level: 1 }).waitFor();
    const focused = await pageA.evaluate(() => document.activeElement?.tagName);
    assert(focused === "H1", `focus moves to the page heading after navigation, got ${focused}`);
    // Every control reachable by Tab shows a visible focus indicator (outline) .
    await pageA.keyboard.press("Tab");
    const outline = await pageA.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    assert(outline !== "none", "focused control has an outline");
  });

  await test("API key: create with scopes (shown once), use it, list, revoke", async () => {
    await nav(pageA, "API keys");
    await checkLabels(pageA, "keys");
    await pageA.getByLabel("Key name").fill("playground");
    await pageA.getByLabel("track:write").check();
    await pageA.getByLabel("chat").check();
    await pageA.getByRole("button", { name: "Create key" }).click();
    const secret = (await pageA.getByTestId("new-key").textContent()).trim();
    globalThis.playgroundKey = secret;
    assert(/^atr_[0-9A-Za-z]{43}$/.test(secret), `key format: ${secret}`);
    await shot(pageA, "keys");
    // /v1/embeddings belongs to the relay when it runs (relay scope); the embed service's own
    // VecBoost route takes the embed scope.
    const emb = await api(base, "POST", "/api/v1/embed/batch", { key: secret, body: { texts: ["the cat sat"] } });
    assert(emb.status === 200, `the new key embeds: ${emb.status} ${JSON.stringify(emb.json)}`);
    await pageA.getByRole("button", { name: "I have copied it" }).click();
    assert((await pageA.getByTestId("new-key").count()) === 0, "the secret is gone once dismissed");
    await pageA.reload();
    await pageA.getByRole("cell", { name: "playground", exact: true }).waitFor();
    assert(!(await pageA.content()).includes(secret), "the list never shows the secret");
    // Create a second one and revoke it.
    await pageA.getByLabel("Key name").fill("to-revoke");
    await pageA.getByRole("button", { name: "Create key" }).click();
    const doomed = (await pageA.getByTestId("new-key").textContent()).trim();
    pageA.once("dialog", (d) => d.accept());
    await pageA.getByRole("button", { name: "Revoke key to-revoke" }).click();
    await pageA.getByRole("button", { name: "Revoke key to-revoke" }).waitFor({ state: "detached" });
    const after = await api(base, "POST", "/api/v1/embed/batch", { key: doomed, body: { texts: ["x"] } });
    assert(after.status === 401, `a revoked key is refused: ${after.status}`);
    globalThis.playgroundKey = secret;
  });

  await test("embed playground: model list, embeddings, similarity heat map", async () => {
    await nav(pageA, "Embed playground");
    await checkLabels(pageA, "embed");
    const model = await pageA.getByLabel("Model").inputValue();
    assert(model === "tiny", `model picked from /info: ${model}`);
    await pageA.getByLabel("Texts (one per line)").fill("the cat sat on the mat\nthe dog runs fast\nthe cat sat on the mat .");
    await pageA.getByRole("button", { name: "Embed" }).click();
    await pageA.getByRole("table", { name: "Similarity matrix" }).waitFor();
    const diag = await pageA.getByTestId("sim-1-1").textContent();
    assert(diag === "1.00", `diagonal is 1: ${diag}`);
    const near = Number(await pageA.getByTestId("sim-0-2").textContent());
    assert(near > 0.5, `near-duplicate texts are similar: ${near}`);
    await pageA.getByText(/3 texts embedded with tiny, dimension 32/).waitFor();
    await shot(pageA, "embed");
  });

  await test("bus monitor: topics and consumer lag", async () => {
    await nav(pageA, "Bus monitor");
    await checkLabels(pageA, "bus");
    await pageA.getByRole("rowheader", { name: "audit", exact: true }).waitFor();
    await pageA.getByRole("heading", { name: "Consumer lag" }).waitFor();
    await pageA.waitForTimeout(2200); // a second reading gives rates
    await shot(pageA, "bus");
  });

  await test("workspace: invite a second user who signs up with the code", async () => {
    await nav(pageA, "Workspace");
    await checkLabels(pageA, "workspace");
    await pageA.getByRole("button", { name: "Create invite" }).click();
    inviteCode = (await pageA.getByTestId("invite-code").textContent()).trim();
    assert(inviteCode.length > 10, "invite code shown");
    await shot(pageA, "workspace");
    ({ ctx: ctxB, page: pageB } = await newUserPage());
    await pageB.goto(base + "/signup");
    await pageB.getByLabel("Name").fill(bob.name);
    await pageB.getByLabel("Email").fill(bob.email);
    await pageB.getByLabel("Password").fill(bob.password);
    await pageB.getByLabel("Invite code (optional)").fill(inviteCode);
    await pageB.getByRole("button", { name: "Sign up" }).click();
    await pageB.getByRole("heading", { name: "Welcome, Bob" }).waitFor();
    await pageA.reload();
    await pageA.getByRole("cell", { name: bob.email }).waitFor();
    // Bob also gets his own workspace through the switcher: create one, switch with the password.
    await nav(pageB, "Workspace");
    await pageB.getByLabel("Workspace name").fill("Bob's lab");
    await pageB.getByRole("button", { name: "Create workspace" }).click();
    await pageB.getByText(/Created workspace Bob's lab/).waitFor();
    await pageB.reload();
    await pageB.getByLabel("Workspace", { exact: true }).locator("option", { hasText: "Bob's lab" }).waitFor({ state: "attached" });
    const options = await pageB.getByLabel("Workspace", { exact: true }).locator("option").allTextContents();
    assert(options.some((o) => o.startsWith("Bob's lab")), `switcher lists the new workspace: ${options}`);
    const wsId = await pageB.getByLabel("Workspace", { exact: true }).locator("option", { hasText: "Bob's lab" }).getAttribute("value");
    // Escape closes the password dialog and gives focus back to the workspace menu.
    await pageB.getByLabel("Workspace", { exact: true }).selectOption(wsId);
    await pageB.getByRole("dialog").getByLabel("Password").waitFor();
    assert(await pageB.getByRole("dialog").getByLabel("Password").evaluate((el) => el === document.activeElement), "the dialog's password field has focus");
    await pageB.keyboard.press("Escape");
    await pageB.getByRole("dialog").waitFor({ state: "detached" });
    await pageB.waitForFunction(() => document.activeElement?.closest(".ws-switcher") && document.activeElement.tagName === "SELECT");
    await pageB.getByLabel("Workspace", { exact: true }).selectOption(wsId);
    await pageB.getByRole("dialog").getByLabel("Password").fill(bob.password);
    await pageB.getByRole("button", { name: "Switch" }).click();
    await pageB.getByRole("heading", { name: "Workspace Bob's lab" }).waitFor();
    // And back to Alice's workspace for the chat.
    const aliceWs = await pageB.getByLabel("Workspace", { exact: true }).locator("option", { hasNotText: "Bob's lab" }).getAttribute("value");
    await pageB.getByLabel("Workspace", { exact: true }).selectOption(aliceWs);
    await pageB.getByRole("dialog").getByLabel("Password").fill(bob.password);
    await pageB.getByRole("button", { name: "Switch" }).click();
    await pageB.getByRole("heading", { name: /^Workspace (?!Bob's lab)/ }).waitFor();
  });

  await test("chat: channel, two users live over SSE, reactions, thread, search", async () => {
    assert(pageB, "second user exists");
    await nav(pageA, "Chat");
    await pageA.getByText("Live").waitFor();
    await pageA.getByRole("button", { name: "New chat" }).click();
    await checkLabels(pageA, "chat");
    await pageA.getByLabel("Chat type").selectOption("public_channel");
    await pageA.getByLabel("Chat name").fill("general");
    await pageA.getByRole("button", { name: "Create chat" }).click();
    await pageA.getByRole("heading", { name: "#general" }).waitFor();

    await nav(pageB, "Chat");
    await pageB.getByText("Live").waitFor();
    await pageB.getByRole("navigation", { name: "Chats" }).getByRole("link", { name: "#general" }).click();
    await pageB.getByRole("button", { name: "Join channel" }).click();
    await pageB.getByLabel("Message #general").waitFor();

    // Alice types with Enter; Bob sees it without reloading.
    const composerA = pageA.getByLabel("Message #general");
    await composerA.fill("hello bob, deploy on thursday");
    await composerA.press("Enter");
    await pageB.getByText("hello bob, deploy on thursday").waitFor();
    // Bob may see it (SSE) before Alice's send has returned: wait for her composer to clear.
    for (let i = 0; i < 50 && (await composerA.inputValue()) !== ""; i++) await pageA.waitForTimeout(100);
    assert((await composerA.inputValue()) === "", "composer cleared after send");
    // Bob types: Alice sees the typing indicator, then the reply.
    const composerB = pageB.getByLabel("Message #general");
    await composerB.pressSequentially("hi al", { delay: 20 });
    await pageA.getByText("Bob is typing…").waitFor();
    await composerB.pressSequentially("ice", { delay: 10 });
    await composerB.press("Shift+Enter");
    await composerB.pressSequentially("second line");
    await composerB.press("Enter");
    await pageA.getByText(/hi alice\s+second line/).waitFor();
    // Read receipt: Bob has read Alice's message.
    await pageA.getByText(/Seen by Bob/).waitFor();
    // Reaction from Bob shows for Alice.
    await pageB.getByRole("listitem", { name: /Alice: hello bob/ }).getByRole("button", { name: "React with 👍" }).click();
    await pageA.getByRole("button", { name: /👍 1/ }).waitFor();
    // Thread reply.
    await pageA.getByRole("listitem", { name: /Bob: hi alice/ }).getByRole("button", { name: "Reply in thread" }).click();
    const thread = pageA.getByRole("complementary", { name: "Thread" });
    await thread.getByLabel("Reply").fill("threaded answer");
    await thread.getByLabel("Reply").press("Enter");
    await thread.getByRole("listitem", { name: "Alice: threaded answer" }).waitFor();
    await pageA.getByRole("button", { name: "1 reply" }).waitFor();
    // Edit.
    await pageA.getByRole("listitem", { name: /Alice: hello bob/ }).getByRole("button", { name: "Edit" }).click();
    await pageA.getByLabel("Edit message").fill("hello bob, deploy on thursday (edited text)");
    await pageA.getByRole("button", { name: "Save edit" }).click();
    await pageB.getByText("hello bob, deploy on thursday (edited text)").waitFor();
    await shot(pageA, "chat-alice");
    await shot(pageB, "chat-bob");
    // Unread count: Bob leaves the chat view, Alice writes, Bob's list shows 1 unread. The chat
    // view marks messages read 300 ms after they are shown (a glance is not a read), so Bob stays
    // long enough for the thread reply to count as read before leaving.
    await pageB.waitForTimeout(800);
    await nav(pageB, "Home");
    await composerA.fill("are you there?");
    await composerA.press("Enter");
    await nav(pageB, "Chat");
    await pageB.getByRole("link", { name: /#general.*1 unread/ }).waitFor();
    // Search.
    await pageB.getByRole("link", { name: "Search messages" }).click();
    await checkLabels(pageB, "chat search");
    await pageB.getByLabel("Search words").fill("deplo thurs");
    await pageB.getByRole("button", { name: "Search", exact: true }).click();
    await pageB.locator("mark").first().waitFor();
    const hit = await pageB.locator(".results li").first().textContent();
    assert(hit.includes("thursday"), `search finds the message: ${hit}`);
    // Filters: sender, chat type, chat and date range narrow the results on the server. Each
    // search is awaited through its request, so a stale result list is never read.
    const search = async () => {
      const done = pageB.waitForResponse((r) => r.url().includes("/api/v1/search/messages"));
      await pageB.getByRole("button", { name: "Search", exact: true }).click();
      const r = await done;
      assert(r.status() === 200, `search answers ${r.status()}`);
      await pageB.waitForTimeout(50);
      return pageB.locator(".results li").allTextContents();
    };
    const today = new Date();
    const ymd = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
    await pageB.getByLabel("Sender").selectOption({ label: "Bob" });
    assert((await search()).length === 0, "Bob never wrote about thursday");
    await pageB.getByText("No messages found.").waitFor();
    await pageB.getByLabel("Sender").selectOption({ label: "Alice" });
    let hits = await search();
    assert(hits.length === 1 && hits[0].includes("thursday"), `Alice's message: ${hits}`);
    await pageB.getByLabel("Chat type").selectOption("direct");
    assert((await search()).length === 0, "no direct message matches");
    await pageB.getByLabel("Chat type").selectOption("public_channel");
    await pageB.getByLabel("In chat").selectOption({ label: "general" });
    await pageB.getByLabel("From").fill(ymd(today));
    await pageB.getByLabel("To").fill(ymd(today));
    hits = await search();
    assert(hits.length === 1 && hits[0].includes("thursday"), `every filter at once: ${hits}`);
    await shot(pageB, "chat-search");
    await pageB.getByLabel("To").fill(ymd(new Date(today.getTime() - 86400000)));
    assert((await search()).length === 0, "nothing before today");
    // The other chat types: a direct message and a private channel with Bob appear in his list.
    await nav(pageB, "Chat");
    await nav(pageA, "Chat");
    await pageA.getByRole("button", { name: "New chat" }).click();
    await pageA.getByLabel("Chat type").selectOption("direct");
    await pageA.getByLabel("Person").selectOption({ label: "Bob" });
    await pageA.getByRole("button", { name: "Create chat" }).click();
    await pageA.getByRole("heading", { name: "Bob", exact: true }).waitFor();
    await pageA.getByRole("button", { name: "New chat" }).click();
    await pageA.getByLabel("Chat type").selectOption("private_channel");
    await pageA.getByLabel("Chat name").fill("secret-plans");
    await pageA.getByLabel("Members", { exact: true }).selectOption([{ label: "Bob" }]);
    await pageA.getByRole("button", { name: "Create chat" }).click();
    await pageA.getByRole("heading", { name: "#secret-plans" }).waitFor();
    const bobChats = pageB.getByRole("navigation", { name: "Chats" });
    await bobChats.getByRole("link", { name: "Alice", exact: true }).waitFor();
    await bobChats.getByRole("link", { name: "#secret-plans" }).waitFor();
    // A group needs three members: Carol joins the workspace (invite + register over HTTP).
    const ws = (await api(base, "GET", "/api/v1/auth/me", { token: aliceToken })).json.workspace.id;
    const inv = await api(base, "POST", `/api/v1/workspaces/${ws}/invites`, { token: aliceToken, body: { role: "member" } });
    assert(inv.status === 201, `invite for Carol: ${inv.status} ${JSON.stringify(inv.json)}`);
    const carol = await api(base, "POST", "/api/v1/auth/register", { body: { email: "carol@example.com", password: "carol-password-1", name: "Carol", invite_code: inv.json.code } });
    assert(carol.status === 201, `Carol registers: ${carol.status} ${JSON.stringify(carol.json)}`);
    await pageA.reload();
    await pageA.getByText("Live").waitFor();
    // Escape closes the new-chat form and focus returns to its button.
    await pageA.getByRole("button", { name: "New chat" }).click();
    await pageA.getByLabel("Chat type").waitFor();
    assert(await pageA.getByLabel("Chat type").evaluate((el) => el === document.activeElement), "the form's first field has focus");
    await pageA.keyboard.press("Escape");
    await pageA.getByRole("form", { name: "New chat" }).waitFor({ state: "detached" });
    assert(await pageA.getByRole("button", { name: "New chat" }).evaluate((el) => el === document.activeElement), "focus back on New chat");
    await pageA.keyboard.press("Enter"); // the focused button opens the form again
    await pageA.getByLabel("Chat type").selectOption("group");
    await pageA.getByLabel("Chat name").fill("trio");
    await pageA.getByLabel("Members", { exact: true }).selectOption([{ label: "Bob" }, { label: "Carol" }]);
    await checkLabels(pageA, "new group");
    await pageA.getByRole("button", { name: "Create chat" }).click();
    await pageA.getByRole("heading", { name: "trio", exact: true }).waitFor();
    await bobChats.getByRole("link", { name: "trio" }).waitFor();
    const carolLogin = await api(base, "POST", "/api/v1/auth/login", { body: { email: "carol@example.com", password: "carol-password-1", workspace_id: ws } });
    const carolChats = await api(base, "GET", "/api/v1/chats", { token: carolLogin.json.access_token });
    const trio = carolChats.json.chats.find((c) => c.name === "trio");
    assert(trio && trio.type === "group" && trio.member_count === 3, `Carol is in the group: ${JSON.stringify(trio)}`);
    // Enter sends in the group too.
    await pageA.getByLabel("Message trio").fill("hello trio");
    await pageA.getByLabel("Message trio").press("Enter");
    await bobChats.getByRole("link", { name: "trio" }).click();
    await pageB.getByText("hello trio").waitFor();
    await shot(pageA, "chat-group");
  });

  await test("chat: after a server restart the stream reconnects and resumes without losing messages", async () => {
    await nav(pageA, "Chat");
    await pageA.getByRole("navigation", { name: "Chats" }).getByRole("link", { name: /#general/ }).click();
    await pageA.getByText("Live").waitFor();
    const chats = await api(base, "GET", "/api/v1/chats", { token: aliceToken });
    const general = chats.json.chats.find((c) => c.name === "general");
    await server.stop();
    await pageA.getByText("Connecting…").waitFor();
    server = await startAtrium({ binary, webRoot, tmp, port: Number(new URL(base).port) });
    const login = await api(base, "POST", "/api/v1/auth/login", { body: { email: bob.email, password: bob.password, workspace_id: general.workspace_id } });
    const sent = await api(base, "POST", `/api/v1/chats/${general.id}/messages`, { token: login.json.access_token, body: { content: "sent while alice was reconnecting", idempotency_key: "restart-1" } });
    assert(sent.status === 201, `send over HTTP: ${sent.status}`);
    await pageA.getByText("sent while alice was reconnecting").waitFor({ timeout: 20000 });
    await pageA.getByText("Live").waitFor({ timeout: 20000 });
    // The same idempotency key again: the original message, no duplicate.
    const again = await api(base, "POST", `/api/v1/chats/${general.id}/messages`, { token: login.json.access_token, body: { content: "sent while alice was reconnecting", idempotency_key: "restart-1" } });
    assert(again.status === 200, `retry answers 200: ${again.status}`);
    await pageA.waitForTimeout(500);
    assert((await pageA.getByText("sent while alice was reconnecting").count()) === 1, "exactly one copy shown");
  });

  await test("chat: infinite scroll loads older messages when scrolled to the top", async () => {
    const ws = (await api(base, "GET", "/api/v1/auth/me", { token: aliceToken })).json.workspace.id;
    const token = (await api(base, "POST", "/api/v1/auth/login", { body: { email: bob.email, password: bob.password, workspace_id: ws } })).json.access_token;
    const chat = await api(base, "POST", "/api/v1/chats", { token, body: { type: "public_channel", name: "history" } });
    assert(chat.status === 201, `create channel: ${chat.status}`);
    for (let i = 1; i <= 70; i++) {
      const r = await api(base, "POST", `/api/v1/chats/${chat.json.id}/messages`, { token, body: { content: `history message ${i}`, idempotency_key: `h-${i}` } });
      assert(r.status === 201, `send ${i}: ${r.status}`);
    }
    await pageA.goto(`${base}/chat/${chat.json.id}`);
    await pageA.getByText("history message 70", { exact: true }).waitFor();
    assert((await pageA.getByText("history message 1", { exact: true }).count()) === 0, "only the newest page is loaded first");
    await pageA.getByRole("list", { name: "Messages in #history" }).evaluate((el) => (el.scrollTop = 0));
    await pageA.getByText("history message 1", { exact: true }).waitFor();
    await pageA.getByText("Beginning of the conversation").waitFor();
  });

  await test("tracking: a run logged by the Python SDK shows its downsampled chart; filter errors point at the position", async () => {
    const key = globalThis.playgroundKey;
    // The baseline run comes from the Python SDK (sdk/python), with a spike at step 1234 that the
    // downsampled chart must keep.
    const run = { json: { id: await logBaselineRun(key) } };
    const run2 = await api(base, "POST", "/api/v1/runs", { key, body: { project: "demo", name: "bigger-lr", config: { lr: 0.1, model: { layers: 8 } } } });
    await api(base, "POST", `/api/v1/runs/${run2.json.id}/metrics`, { key, body: { points: [0, 100, 200, 300].map((s, i) => ({ key: "loss", step: s, value: 2 - i * 0.3 })) } });
    await api(base, "POST", `/api/v1/runs/${run2.json.id}/finish`, { key, body: {} });

    await nav(pageA, "Tracking");
    await checkLabels(pageA, "projects");
    await shot(pageA, "track-projects");
    await pageA.getByRole("link", { name: "demo" }).click();
    await pageA.getByRole("link", { name: "baseline" }).waitFor();
    await checkLabels(pageA, "runs");
    // A bad filter: the 400's position is shown under the text.
    const box = pageA.getByLabel("Filter runs");
    await box.fill("params.lr < and status = 'x'");
    await box.press("Enter");
    const err = pageA.locator("#run-filter-error");
    await err.waitFor();
    const errText = await err.textContent();
    assert(/Filter error: .* \(at character \d+\)/.test(errText), `error with position: ${errText}`);
    assert((await box.getAttribute("aria-invalid")) === "true", "the box is marked invalid");
    await shot(pageA, "track-filter-error");
    // A good filter narrows the table.
    await box.fill("params.lr < 0.05");
    await box.press("Enter");
    await pageA.getByRole("link", { name: "bigger-lr" }).waitFor({ state: "detached" });
    await pageA.getByRole("link", { name: "baseline" }).waitFor();
    await box.fill("");
    await box.press("Enter");
    await pageA.getByRole("link", { name: "bigger-lr" }).waitFor();
    // The column chooser: "Ended" is not shown by default; choosing it adds its header, and
    // dropping "group" removes that one.
    const table = pageA;
    assert((await table.getByRole("button", { name: "Ended", exact: true }).count()) === 0, "Ended hidden by default");
    await pageA.getByText(/^Columns \(/).click();
    await pageA.getByLabel("end_time", { exact: true }).check();
    await table.getByRole("button", { name: "Ended", exact: true }).waitFor();
    if (await pageA.getByLabel("group", { exact: true }).isChecked()) {
      await pageA.getByLabel("group", { exact: true }).uncheck();
      await table.getByRole("button", { name: "Group", exact: true }).waitFor({ state: "detached" });
    }
    await pageA.getByText(/^Columns \(/).click();
    // Sort by a column header (server-side order_by).
    await pageA.getByRole("button", { name: "loss", exact: true }).click();
    await pageA.locator('th[aria-sort="ascending"]').waitFor();
    await shot(pageA, "track-runs");
    // Compare both runs.
    await pageA.getByLabel("Select run baseline").check();
    await pageA.getByLabel("Select run bigger-lr").check();
    await pageA.getByRole("button", { name: "Compare selected (2)" }).click();
    await pageA.getByTestId("chart-loss").locator("canvas").waitFor();
    await pageA.getByRole("heading", { name: "Parallel coordinates" }).waitFor();
    await checkLabels(pageA, "compare");
    await shot(pageA, "track-compare");
    // The run page: chart of the downsampled series.
    await pageA.goto(`${base}/track/runs/${run.json.id}`);
    const chart = pageA.getByTestId("chart-loss");
    await chart.locator("canvas").waitFor();
    const caption = await pageA.locator("figure", { has: chart }).locator("figcaption").textContent();
    assert(/of 3000 points \(downsampled/.test(caption), `downsampled caption: ${caption}`);
    await pageA.getByLabel("Log scale").check();
    await pageA.getByLabel(/Smoothing/).fill("0.6");
    await chart.locator("canvas").waitFor();
    // Zoom by dragging across the plot: the server is asked for the step range.
    const overlay = chart.locator(".u-over");
    const bb = await overlay.boundingBox();
    await pageA.mouse.move(bb.x + bb.width * 0.3, bb.y + bb.height / 2);
    await pageA.mouse.down();
    await pageA.mouse.move(bb.x + bb.width * 0.5, bb.y + bb.height / 2, { steps: 5 });
    await pageA.mouse.up();
    await pageA.getByRole("button", { name: "Reset zoom of loss" }).waitFor();
    await pageA.getByText("lr is high").waitFor();
    // The file the SDK saved, listed with a download link.
    await pageA.getByRole("link", { name: "notes.txt" }).waitFor();
    await checkLabels(pageA, "run");
    await shot(pageA, "track-run");
    {
      await pageA.getByRole("link", { name: /^mnist-sample:v/ }).click();
      await pageA.getByRole("button", { name: "v0" }).click();
      await pageA.getByRole("img", { name: /^Lineage: run:.* produced version:/ }).waitFor();
      await pageA.getByLabel("Alias for v0").fill("best");
      await pageA.getByRole("button", { name: "Set alias" }).click();
      await pageA.getByRole("button", { name: "Remove alias best" }).waitFor();
      await checkLabels(pageA, "artifacts");
      await shot(pageA, "track-artifacts");
    }
    // A running run's page updates live (its SSE stream): new points and log lines appear.
    const live = await api(base, "POST", "/api/v1/runs", { key, body: { project: "demo", name: "live-run" } });
    await api(base, "POST", `/api/v1/runs/${live.json.id}/metrics`, { key, body: { points: Array.from({ length: 10 }, (_, s) => ({ key: "reward", step: s, value: s })) } });
    await pageA.goto(`${base}/track/runs/${live.json.id}`);
    const liveCaption = pageA.locator("figure", { has: pageA.getByTestId("chart-reward") }).locator("figcaption");
    await liveCaption.getByText("10 points").waitFor();
    await pageA.waitForTimeout(300); // the stream connects
    await api(base, "POST", `/api/v1/runs/${live.json.id}/metrics`, { key, body: { points: Array.from({ length: 10 }, (_, s) => ({ key: "reward", step: 10 + s, value: 10 + s })) } });
    await api(base, "POST", `/api/v1/runs/${live.json.id}/logs`, { key, body: { lines: [{ message: "live line arrived" }] } });
    await liveCaption.getByText("20 points").waitFor({ timeout: 8000 });
    await pageA.getByText("live line arrived").waitFor({ timeout: 8000 });
    await api(base, "POST", `/api/v1/runs/${live.json.id}/finish`, { key, body: {} });
    await pageA.locator(".badge", { hasText: "finished" }).waitFor({ timeout: 8000 });

    // Sweeps: create one from the example config; its stats panel opens.
    await nav(pageA, "Sweeps");
    await pageA.getByRole("heading", { name: "Sweeps", level: 1 }).waitFor();
    await checkLabels(pageA, "sweeps");
    await pageA.getByLabel("Sweep name").fill("lr-search");
    await pageA.getByRole("button", { name: "Create sweep" }).click();
    await pageA.getByRole("heading", { name: /Sweep lr-search/ }).waitFor();
    await pageA.getByRole("button", { name: "Pause sweep" }).click();
    await pageA.getByRole("button", { name: "Resume sweep" }).waitFor();
    await shot(pageA, "track-sweeps");
    // Registry: a model, a version from the baseline run, staged to production.
    await nav(pageA, "Model registry");
    await pageA.getByRole("heading", { name: "Model registry", level: 1 }).waitFor();
    await pageA.getByLabel("Model name").fill("digits");
    await pageA.getByRole("button", { name: "Create model" }).click();
    await pageA.getByRole("heading", { name: "Model digits" }).waitFor();
    await pageA.getByLabel("Run id of the new version (optional)").fill(String(run.json.id));
    await pageA.getByRole("button", { name: "Register version" }).click();
    await pageA.getByLabel("Stage of version 1").selectOption("production");
    await pageA.getByText(/none → production/).waitFor();
    await checkLabels(pageA, "registry");
    await shot(pageA, "track-registry");
  });

  await test("relay admin: a local account and a relay key created in the UI work with the openai npm client", async () => {
    await nav(pageA, "Relay admin");
    await pageA.getByRole("heading", { name: "Upstream accounts" }).waitFor();
    // An account of provider "local" routes /v1/embeddings to this server's embed engine.
    await pageA.getByText("Add an upstream account").click();
    const acc = pageA.getByRole("form", { name: "Add upstream account" });
    await acc.getByLabel("Account name").fill("local-embed");
    await acc.getByLabel("Provider").selectOption("local");
    await acc.getByRole("button", { name: "Add account" }).click();
    await pageA.getByRole("rowheader", { name: "local-embed" }).waitFor();
    await pageA.getByRole("button", { name: "Test account local-embed" }).click();
    await pageA.getByRole("row", { name: /local-embed/ }).getByRole("status").filter({ hasText: /ok in|failed/ }).waitFor();
    await checkLabels(pageA, "relay");
    const form = pageA.getByRole("form", { name: "Create API key" });
    if (!(await form.isVisible())) await pageA.getByText("Create a relay key").click();
    await form.getByLabel("Key name").fill("relay-client");
    await form.getByText("Limits, budget and expiry").click();
    await form.getByLabel("Requests per minute").fill("100");
    await form.getByLabel("Daily budget (USD)").fill("5");
    await form.getByRole("button", { name: "Create key" }).click();
    const secret = (await pageA.getByTestId("new-key").textContent()).trim();
    const { default: OpenAI } = await import("openai");
    const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: secret });
    const r = await client.embeddings.create({ model: "tiny", input: ["the cat sat", "a dog runs"] });
    assert(r.data.length === 2 && r.data[0].embedding.length === 32, `openai client embeddings: ${JSON.stringify(r).slice(0, 200)}`);
    await pageA.reload();
    await pageA.getByRole("rowheader", { name: /relay-client/ }).waitFor();
    await pageA.getByText(/Last 7 days: [1-9]\d* requests/).waitFor();
    // The key's dashboard: totals and a chart per measure from the same aggregates.
    await pageA.getByRole("button", { name: "Dashboard of key relay-client" }).click();
    const dash = pageA.getByRole("region", { name: "Dashboard of key relay-client" });
    await dash.getByRole("status").filter({ hasText: /^[1-9]\d* requests/ }).waitFor();
    await dash.getByRole("img", { name: /Dashboard of key relay-client: requests/ }).waitFor();
    await dash.getByRole("rowheader", { name: "tiny" }).waitFor();
    await checkLabels(pageA, "relay dashboard");
    await shot(pageA, "relay");
  });

  await test("relay webhooks: create, edit (Escape closes), a delivery to a local receiver with its log, delete", async () => {
    // A receiver on a free port: /hook answers 200, /flaky answers 500 to its first request and
    // 200 after, /upstream/* plays an upstream that refuses the account's key (401).
    const received = [];
    let flaky = 0;
    const receiver = http.createServer((req, res) => {
      let body = "";
      req.on("data", (d) => (body += d));
      req.on("end", () => {
        if (req.url.startsWith("/upstream")) {
          res.writeHead(401, { "content-type": "application/json" });
          res.end(JSON.stringify({ error: { message: "invalid api key", type: "invalid_request_error" } }));
          return;
        }
        received.push({ path: req.url, headers: req.headers, body });
        const status = req.url === "/flaky" && flaky++ === 0 ? 500 : 200;
        res.writeHead(status, { "content-type": "text/plain" });
        res.end(status === 200 ? "ok" : "try again");
      });
    });
    await new Promise((r) => receiver.listen(0, "127.0.0.1", r));
    const rx = `http://127.0.0.1:${receiver.address().port}`;
    try {
      await nav(pageA, "Relay webhooks");
      await pageA.getByRole("heading", { name: "Relay webhooks", level: 1 }).waitFor();
      await pageA.getByText("No webhooks.").waitFor();
      await checkLabels(pageA, "webhooks");
      const form = pageA.getByRole("form", { name: "Add webhook" });
      // Tab order follows the form: URL → format → secret → the first event.
      await form.getByLabel("Target URL").focus();
      const tabTo = async () => {
        await pageA.keyboard.press("Tab");
        return pageA.evaluate(() => (document.activeElement?.labels?.[0]?.textContent ?? document.activeElement?.tagName) || "");
      };
      assert((await tabTo()) === "Format", "Tab from the URL reaches Format");
      assert((await tabTo()) === "Signing secret", "then the secret");
      assert((await tabTo()) === "account.rate_limited", "then the first event");
      // A bad URL is refused by the server with a message naming the field.
      await form.getByLabel("Target URL").fill("ftp://nowhere");
      await form.evaluate((f) => f.setAttribute("novalidate", ""));
      await form.getByRole("button", { name: "Add webhook" }).click();
      await form.getByRole("alert").filter({ hasText: /url must be an http/ }).waitFor();
      // Signed JSON for the unauthorized event, with our secret.
      await form.getByLabel("Target URL").fill(`${rx}/hook`);
      await form.getByLabel("Format").selectOption("json");
      await form.getByLabel("Signing secret").fill("whsec_test_secret");
      await form.getByLabel("account.unauthorized").check();
      await form.getByRole("button", { name: "Add webhook" }).click();
      await pageA.getByRole("rowheader", { name: `${rx}/hook` }).waitFor();
      // A Slack target for every event; its secret is generated and shown once.
      await form.getByLabel("Target URL").fill(`${rx}/slack-old`);
      await form.getByLabel("Format").selectOption("slack");
      await form.getByRole("button", { name: "Add webhook" }).click();
      const generated = (await pageA.getByTestId("webhook-secret").textContent()).trim();
      assert(/^whsec_/.test(generated), `generated secret: ${generated}`);
      await pageA.getByRole("button", { name: "I have copied the secret" }).click();
      const slackRow = pageA.getByRole("row", { name: new RegExp(`${rx}/slack-old`) });
      await slackRow.getByRole("cell", { name: "all", exact: true }).waitFor();
      // Edit: the dialog opens with focus inside; Escape closes it and focus returns to Edit.
      await pageA.getByRole("button", { name: `Edit webhook ${rx}/slack-old` }).click();
      const dialog = pageA.getByRole("dialog", { name: "Edit webhook" });
      await dialog.waitFor();
      assert(await dialog.getByLabel("Target URL").evaluate((el) => el === document.activeElement), "focus in the dialog");
      await checkLabels(pageA, "edit webhook");
      await pageA.keyboard.press("Escape");
      await dialog.waitFor({ state: "detached" });
      await pageA.waitForFunction((name) => document.activeElement?.getAttribute("aria-label") === name, `Edit webhook ${rx}/slack-old`);
      await pageA.keyboard.press("Enter");
      await dialog.waitFor();
      await dialog.getByLabel("Target URL").fill(`${rx}/flaky`);
      await dialog.getByRole("button", { name: "Save webhook" }).click();
      await dialog.waitFor({ state: "detached" });
      await pageA.getByRole("rowheader", { name: `${rx}/flaky` }).waitFor();
      assert((await pageA.getByRole("rowheader", { name: `${rx}/slack-old` }).count()) === 0, "the old target is gone");
      assert((await pageA.getByTestId("webhook-secret").count()) === 0, "edited in place: the secret stays, no new one is shown");
      await shot(pageA, "relay-webhooks");

      // An event: an account whose upstream refuses the key; its Test marks it unauthorized.
      await nav(pageA, "Relay admin");
      await pageA.getByText("Add an upstream account").click();
      const acc = pageA.getByRole("form", { name: "Add upstream account" });
      await acc.getByLabel("Account name").fill("refused");
      await acc.getByLabel("Provider").selectOption("openai-compatible");
      await acc.getByLabel("Base URL").fill(`${rx}/upstream/v1`);
      await acc.getByLabel("Upstream API key").fill("sk-wrong");
      await acc.getByRole("button", { name: "Add account" }).click();
      await pageA.getByRole("rowheader", { name: "refused" }).waitFor();
      await pageA.getByRole("button", { name: "Test account refused" }).click();
      await pageA.getByRole("row", { name: /refused/ }).getByRole("status").filter({ hasText: /failed \(401\)/ }).waitFor();

      // The signed delivery arrives, and both logs show it.
      const deadline = Date.now() + 20000;
      while (Date.now() < deadline && !(received.some((r) => r.path === "/hook") && received.filter((r) => r.path === "/flaky").length >= 2)) await new Promise((r) => setTimeout(r, 100));
      const hook = received.find((r) => r.path === "/hook");
      assert(hook, `the json webhook got the event: ${JSON.stringify(received.map((r) => r.path))}`);
      const event = JSON.parse(hook.body);
      assert(event.type === "account.unauthorized" && hook.headers["x-atrium-event"] === "account.unauthorized", `event: ${hook.body}`);
      const mac = crypto.createHmac("sha256", "whsec_test_secret").update(`${hook.headers["x-atrium-timestamp"]}.${hook.body}`).digest("hex");
      assert(hook.headers["x-atrium-signature"] === `sha256=${mac}`, "the HMAC signature verifies with the secret set in the UI");
      const slack = received.filter((r) => r.path === "/flaky");
      assert(slack.length >= 2 && JSON.parse(slack[1].body).text.startsWith("[atrium relay] account refused"), `slack text: ${slack.map((r) => r.body)}`);

      await nav(pageA, "Relay webhooks");
      await pageA.getByRole("button", { name: `Deliveries of ${rx}/hook` }).click();
      const log = pageA.getByRole("region", { name: `Deliveries to ${rx}/hook` });
      const row = log.getByTestId("delivery").first();
      await row.waitFor();
      const cells = await row.locator("td").allTextContents();
      assert(cells[1] === "account.unauthorized" && cells[2] === event.id && cells[3] === "1" && cells[4] === "delivered" && cells[5] === "200", `delivery row: ${cells}`);
      await pageA.getByRole("button", { name: `Deliveries of ${rx}/flaky` }).click();
      const flakyLog = pageA.getByRole("region", { name: `Deliveries to ${rx}/flaky` });
      await flakyLog.getByTestId("delivery").nth(1).waitFor();
      const rows = await flakyLog.getByTestId("delivery").evaluateAll((trs) => trs.map((tr) => Array.from(tr.querySelectorAll("td")).map((td) => td.textContent)));
      // Newest first: attempt 2 delivered (200) after attempt 1 failed (500).
      assert(rows[0][3] === "2" && rows[0][4] === "delivered" && rows[0][5] === "200", `retry: ${rows[0]}`);
      assert(rows[1][3] === "1" && rows[1][4] === "failed" && rows[1][5] === "500" && rows[1][6] === "HTTP 500", `first attempt: ${rows[1]}`);
      await checkLabels(pageA, "webhook deliveries");
      // "Send test": a signed webhook.test event now, its outcome in the row and in the open log.
      await pageA.getByRole("button", { name: `Deliveries of ${rx}/hook` }).click();
      const before = received.length;
      await pageA.getByRole("button", { name: `Send a test event to ${rx}/hook` }).click();
      await pageA.getByRole("row", { name: new RegExp(`${rx}/hook`) }).getByRole("status").filter({ hasText: /Test event: delivered in \d+ ms/ }).waitFor();
      const probe = received.slice(before).find((r) => r.path === "/hook");
      assert(probe && JSON.parse(probe.body).type === "webhook.test" && probe.headers["x-atrium-event"] === "webhook.test", `test event: ${probe && probe.body}`);
      const probeMac = crypto.createHmac("sha256", "whsec_test_secret").update(`${probe.headers["x-atrium-timestamp"]}.${probe.body}`).digest("hex");
      assert(probe.headers["x-atrium-signature"] === `sha256=${probeMac}`, "the test event is signed with the webhook's secret");
      await log.getByTestId("delivery").filter({ hasText: "webhook.test" }).first().waitFor();
      await shot(pageA, "relay-webhook-deliveries");
      // Delete.
      pageA.once("dialog", (d) => d.accept());
      await pageA.getByRole("button", { name: `Delete webhook ${rx}/flaky` }).click();
      await pageA.getByRole("rowheader", { name: `${rx}/flaky` }).waitFor({ state: "detached" });
      const left = await api(base, "GET", "/api/v1/relay/webhooks", { token: aliceToken });
      assert(left.status === 200 && left.json.webhooks.length === 1, `one webhook left: ${JSON.stringify(left.json)}`);
    } finally {
      receiver.close();
    }
  });

  await test("a screenshot of every page", async () => {
    const want = ["signin", "signup", "home", "keys", "embed", "bus", "workspace", "chat-alice", "chat-bob", "chat-search", "chat-group",
      "track-projects", "track-filter-error", "track-runs", "track-compare", "track-run", "track-artifacts", "track-sweeps", "track-registry",
      "relay", "relay-webhooks", "relay-webhook-deliveries"];
    const missing = want.filter((n) => !fs.existsSync(path.join(artifacts, `${n}.png`)));
    assert(missing.length === 0, `screenshots missing: ${missing.join(", ")}`);
  });

  await test("sign-out ends the session", async () => {
    await pageA.getByRole("button", { name: "Sign out" }).click();
    await pageA.waitForURL(/\/signin$/);
    await pageA.reload();
    await pageA.waitForURL(/\/signin$/);
  });

  await test("no uncaught page errors", async () => {
    assert(pageErrors.length === 0, pageErrors.join("\n"));
  });
} catch (e) {
  failures.push(e);
  console.log("FAIL (setup) " + (e && e.stack ? e.stack : e));
} finally {
  await browser.close().catch(() => {});
  await server.stop().catch(() => {});
}

const failed = results.filter((r) => !r.ok).length + failures.length;
const passed = results.filter((r) => r.ok).length;
console.log(`\n${passed} passed, ${failed} failed in ${((Date.now() - started) / 1000).toFixed(1)} s; screenshots in ${artifacts}`);
if (failed === 0) fs.rmSync(tmp, { recursive: true, force: true });
else console.log(`server log: ${path.join(tmp, "atrium.log")}`);
process.exit(failed === 0 ? 0 : 1);
