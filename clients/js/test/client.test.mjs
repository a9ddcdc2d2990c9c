// The client kit against a real server: tests/test_client_js.py starts it and passes its
// address (USERCREDITS_URL) and its HS256 secret (USERCREDITS_JWT_SECRET) to sign users in.
import assert from "node:assert/strict";
import { createHmac, randomUUID } from "node:crypto";
import net from "node:net";
import { test } from "node:test";

import { UserCreditsClient, UserCreditsError } from "../dist/index.js";

const URL_ = process.env.USERCREDITS_URL;
const SECRET = process.env.USERCREDITS_JWT_SECRET;
assert.ok(URL_ && SECRET, "run through tests/test_client_js.py");

function sign(userId, roles = ["user"], { seconds = 600, secret = SECRET } = {}) {
  const part = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const claims = { sub: userId, roles, iat: now, exp: now + seconds };
  const unsigned = `${part({ alg: "HS256", typ: "JWT" })}.${part(claims)}`;
  return `${unsigned}.${createHmac("sha256", secret).update(unsigned).digest("base64url")}`;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until `predicate()` holds, failing with `what()` after 10 s. */
async function until(predicate, what) {
  for (let waited = 0; !predicate(); waited += 50) {
    if (waited >= 10_000) assert.fail(what());
    await sleep(50);
  }
}

const admin = new UserCreditsClient({ url: URL_, token: sign("admin", ["admin"]) });

async function grant(userId, offerGroup, tokens) {
  const GRANT = `mutation($input: GrantTokensInput!) { grantTokens(input: $input) { balanceAfter } }`;
  const data = await admin.request(GRANT, {
    input: { userId, offerGroup, tokens, idempotencyKey: randomUUID(), reason: "test grant" },
  });
  return data.grantTokens.balanceAfter;
}

async function ledger(client, offerGroup) {
  const page = await client.ledger({ offerGroup, first: 50 });
  return page.edges.map((edge) => edge.node);
}

/** A watch of the client's balances that records its statuses, errors and updates. */
function watched(client) {
  const statuses = [];
  const errors = [];
  const seen = recorder();
  const watch = client.watchBalances(
    { onStatus: (status) => statuses.push(status), onError: (error) => errors.push(error) },
    (update) => seen.push(update),
  );
  return { watch, statuses, errors, seen };
}

/** Waits until the watch is refused, long enough after for its 20 ms back-offs to have
 * tried again had it been going to, then stops it. */
async function refusedThenStopped({ watch, statuses }) {
  await until(() => statuses.includes("refused"), () => `not refused: ${statuses}`);
  await sleep(500);
  await watch.stop();
}

/** Collects a watch's updates; `next(predicate)` waits for the first one that matches. */
function recorder() {
  const updates = [];
  const waiters = [];
  return {
    updates,
    push(update) {
      updates.push(update);
      for (const waiter of [...waiters]) {
        if (waiter.predicate(update)) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve(update);
        }
      }
    },
    next(predicate, ms = 10_000) {
      const seen = updates.find(predicate);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const waiter = { predicate, resolve };
        waiters.push(waiter);
        setTimeout(() => reject(new Error(`no such update in ${ms} ms`)), ms).unref();
      });
    },
  };
}

const tokensOf = (update, group) => update.balances.find((b) => b.offerGroup === group)?.tokens;

/** A TCP relay in front of the server that a test can cut, and refuse connections through. */
async function relay() {
  const target = new URL(URL_);
  const sockets = new Set();
  let refusing = false;
  const server = net.createServer((inbound) => {
    if (refusing) {
      inbound.destroy();
      return;
    }
    const outbound = net.connect(Number(target.port), target.hostname);
    for (const socket of [inbound, outbound]) {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
      socket.on("error", () => undefined);
    }
    inbound.pipe(outbound).pipe(inbound);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}${target.pathname}`,
    cut() {
      refusing = true;
      for (const socket of sockets) socket.destroy();
    },
    restore() {
      refusing = false;
    },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

test("watchBalances gives the balances first, then each change, and stops", async (t) => {
  const user = `js-${randomUUID()}`;
  await grant(user, "chat", 100);
  const client = new UserCreditsClient({ url: URL_, token: sign(user) });
  const seen = recorder();
  const watch = client.watchBalances({ offerGroup: "chat" }, (update) => seen.push(update));
  t.after(() => watch.stop());

  const first = await seen.next(() => true);
  assert.equal(first.event, null);
  assert.equal(tokensOf(first, "chat"), 100);

  await client.consume({ offerGroup: "chat", tokens: 30 });
  const changed = await seen.next((u) => u.event !== null);
  assert.equal(changed.event.delta, -30);
  assert.equal(changed.event.reason, "consumption");
  assert.equal(tokensOf(changed, "chat"), 70);

  await watch.stop();
  const count = seen.updates.length;
  await client.consume({ offerGroup: "chat", tokens: 5 });
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(seen.updates.length, count, "no update after stop()");
});

test("a dropped connection comes back and a change made meanwhile is shown", async (t) => {
  const user = `js-${randomUUID()}`;
  await grant(user, "chat", 50);
  const cable = await relay();
  let tokenCalls = 0;
  const client = new UserCreditsClient({
    url: cable.url,
    token: () => {
      tokenCalls += 1;
      return sign(user);
    },
    retryBaseMs: 50,
  });
  const seen = recorder();
  const statuses = [];
  const watch = client.watchBalances(
    { offerGroup: "chat", onStatus: (status) => statuses.push(status) },
    (update) => seen.push(update),
  );
  t.after(() => Promise.all([watch.stop(), cable.close()]));
  await seen.next((u) => tokensOf(u, "chat") === 50);
  const callsBefore = tokenCalls;

  cable.cut();
  // Made past the relay while the watch cannot connect: only a fresh read can show it.
  await new UserCreditsClient({ url: URL_, token: sign(user) }).consume({
    offerGroup: "chat",
    tokens: 8,
  });
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(seen.updates.at(-1) && tokensOf(seen.updates.at(-1), "chat"), 50);
  cable.restore();

  await seen.next((u) => u.event === null && tokensOf(u, "chat") === 42);
  assert.deepEqual(statuses.slice(0, 2), ["live", "reconnecting"]);
  assert.equal(statuses.at(-1), "live");
  assert.ok(tokenCalls > callsBefore, "the token is asked for again at reconnection");

  await client.consume({ offerGroup: "chat", tokens: 2 });
  const after = await seen.next((u) => u.event !== null && tokensOf(u, "chat") === 40);
  assert.equal(after.event.delta, -2);
});

test("stop() returns at once while the server cannot be reached", async () => {
  const cable = await relay();
  const client = new UserCreditsClient({ url: cable.url, token: sign(`js-${randomUUID()}`) });
  const seen = recorder();
  const statuses = [];
  const watch = client.watchBalances({ onStatus: (s) => statuses.push(s) }, (u) => seen.push(u));
  await seen.next(() => true);
  cable.cut();
  await new Promise((resolve) => setTimeout(resolve, 100));
  const started = Date.now();
  await watch.stop();
  assert.ok(Date.now() - started < 1000, `stop() took ${Date.now() - started} ms`);
  const count = statuses.length;
  cable.restore();
  await new Promise((resolve) => setTimeout(resolve, 500));
  assert.equal(statuses.length, count, "no status after stop()");
  await cable.close();
});

test("a token that expires on an open socket (4401) is asked for afresh and the watch goes on", async (t) => {
  const user = `js-${randomUUID()}`;
  await grant(user, "chat", 20);
  const tokens = [];
  const client = new UserCreditsClient({
    url: URL_,
    // The first token lapses within two seconds; the callback gives a fresh one after.
    token: () => {
      tokens.push(sign(user, ["user"], { seconds: tokens.length === 0 ? 2 : 600 }));
      return tokens.at(-1);
    },
    retryBaseMs: 50,
  });
  const seen = recorder();
  const statuses = [];
  const closes = [];
  const watch = client.watchBalances(
    {
      offerGroup: "chat",
      onStatus: (status) => statuses.push(status),
      onError: (error) => closes.push(error),
    },
    (update) => seen.push(update),
  );
  t.after(() => watch.stop());
  await seen.next((u) => tokensOf(u, "chat") === 20);

  await until(
    () => statuses.filter((s) => s === "live").length === 2,
    () => `live again: statuses ${statuses}, closes ${closes.map((c) => c.code)}`,
  );
  assert.deepEqual(statuses, ["live", "reconnecting", "live"]);
  const expired = closes.find((error) => error.code !== undefined);
  assert.equal(expired.code, 4401);
  assert.equal(expired.reason, "token expired: reconnect with a fresh token");
  assert.equal(tokens.length, 2, "one fresh token for the one reconnection");

  await client.consume({ offerGroup: "chat", tokens: 3 });
  const after = await seen.next((u) => u.event !== null && tokensOf(u, "chat") === 17);
  assert.equal(after.event.delta, -3);
});

test("an expired fixed token (4401) cannot be refreshed: the watch is refused", async () => {
  const user = `js-${randomUUID()}`;
  const client = new UserCreditsClient({
    url: URL_,
    token: sign(user, ["user"], { seconds: 1 }),
    retryBaseMs: 20,
  });
  const watching = watched(client);
  const { statuses, errors } = watching;
  await refusedThenStopped(watching);
  // Refused at once if the token lapsed before the connection, else after "live".
  assert.ok(["refused", "live,refused"].includes(statuses.join()), `${statuses}`);
  const closes = errors.filter((error) => error.code !== undefined);
  assert.deepEqual(
    closes.map((c) => [c.code, c.reason]),
    [[4401, "token expired: reconnect with a fresh token"]],
  );
});

test("refused credentials (4403) are not tried again", async () => {
  let asked = 0;
  const client = new UserCreditsClient({
    url: URL_,
    token: () => {
      asked += 1;
      return sign(`js-${randomUUID()}`, ["user"], { secret: "someone-elses-secret-long-enough" });
    },
    retryBaseMs: 20,
  });
  const watching = watched(client);
  const { statuses, errors, seen } = watching;
  await refusedThenStopped(watching);
  assert.deepEqual(statuses, ["refused"]);
  assert.equal(asked, 1, "the connection was made once");
  const [closed] = errors.filter((error) => error.code !== undefined);
  assert.equal(closed.code, 4403);
  assert.equal(closed.reason, "the token was refused: Signature verification failed");
  assert.equal(seen.updates.length, 0);
});

test("a watch signed in with an API key stops when the key is revoked (4403)", async () => {
  const CREATE = `mutation { createApiKey(name: "js-worker", role: SERVICE) { secret apiKey { id } } }`;
  const REVOKE = `mutation($id: ID!) { revokeApiKey(id: $id) { revokedAt } }`;
  const { secret, apiKey } = (await admin.request(CREATE, {})).createApiKey;
  let asked = 0;
  const client = new UserCreditsClient({
    url: URL_,
    // A callback, as a token's would be: it is a 4403, not a 4401, that stops the watch.
    token: () => {
      asked += 1;
      return secret;
    },
    retryBaseMs: 20,
  });
  const watching = watched(client);
  const { statuses, errors, seen } = watching;
  await seen.next(() => true);
  const askedBefore = asked;
  await admin.request(REVOKE, { id: apiKey.id });
  await refusedThenStopped(watching);
  assert.deepEqual(statuses, ["live", "refused"]);
  const [closed] = errors.filter((error) => error.code !== undefined);
  assert.deepEqual([closed.code, closed.reason], [4403, "the API key was revoked"]);
  assert.equal(asked, askedBefore, "no reconnection after the refusal");
});

test("with details, each change is followed by the lots it drew", async (t) => {
  const user = `js-${randomUUID()}`;
  await grant(user, "chat", 60);
  const client = new UserCreditsClient({ url: URL_, token: sign(user) });
  const seen = recorder();
  const watch = client.watchBalances({ details: true }, (update) => seen.push(update));
  t.after(() => watch.stop());
  await seen.next(() => true);
  await client.reserve({ offerGroup: "chat", tokens: 15 });
  const read = await seen.next((u) => u.event === null && u.balances[0]?.reserved === 15);
  const [balance] = read.balances;
  assert.equal(balance.tokens, 45);
  assert.deepEqual(
    balance.lots.map((lot) => [lot.tokens, lot.remaining, lot.source]),
    [[60, 45, "GRANT"]],
  );
});

test("a debit whose answer was lost is retried with the same key and counted once", async () => {
  const user = `js-${randomUUID()}`;
  await grant(user, "chat", 100);
  let calls = 0;
  // The first request reaches the server; its answer is then lost, as on a dropped line.
  const losing = async (url, init) => {
    calls += 1;
    const response = await fetch(url, init);
    if (calls === 1) throw new TypeError("fetch failed");
    return response;
  };
  const client = new UserCreditsClient({
    url: URL_,
    token: sign(user),
    fetch: losing,
    retryBaseMs: 10,
  });

  const entry = await client.consume({ offerGroup: "chat", tokens: 25 });
  assert.equal(calls, 2);
  assert.equal(entry.balanceAfter, 75);
  const entries = await ledger(client, "chat");
  assert.deepEqual(
    entries.map((e) => e.tokens),
    [-25, 100],
  );
});

test("an attempt that hangs is abandoned and sent again with the same key", async () => {
  const user = `js-${randomUUID()}`;
  await grant(user, "chat", 100);
  const bodies = [];
  // The first attempt never answers (a stalled proxy); the second goes through.
  const stalling = async (url, init) => {
    bodies.push(init.body);
    if (bodies.length === 1) {
      return new Promise((_, reject) =>
        init.signal.addEventListener("abort", () => reject(init.signal.reason)),
      );
    }
    return fetch(url, init);
  };
  const client = new UserCreditsClient({
    url: URL_,
    token: sign(user),
    fetch: stalling,
    timeoutMs: 200,
    retryBaseMs: 10,
  });
  const entry = await client.consume({ offerGroup: "chat", tokens: 5 });
  assert.equal(entry.balanceAfter, 95);
  assert.equal(bodies.length, 2);
  assert.equal(bodies[0], bodies[1], "the same request, so the same idempotency key");
});

test("a 429 is retried after the Retry-After the service names", async () => {
  const user = `js-${randomUUID()}`;
  await grant(user, "chat", 10);
  const sent = [];
  const limited = async (url, init) => {
    sent.push(Date.now());
    if (sent.length === 1) {
      return new Response("{}", { status: 429, headers: { "Retry-After": "1" } });
    }
    return fetch(url, init);
  };
  const client = new UserCreditsClient({ url: URL_, token: sign(user), fetch: limited });
  assert.equal((await client.consume({ offerGroup: "chat", tokens: 1 })).balanceAfter, 9);
  assert.ok(sent[1] - sent[0] >= 950, `retried after ${sent[1] - sent[0]} ms`);
});

test("a network failure on every attempt is thrown after the attempts", async () => {
  let calls = 0;
  const client = new UserCreditsClient({
    url: URL_,
    token: sign("nobody"),
    attempts: 3,
    retryBaseMs: 1,
    fetch: async () => {
      calls += 1;
      throw new TypeError("fetch failed");
    },
  });
  await assert.rejects(client.consume({ offerGroup: "chat", tokens: 1 }), TypeError);
  assert.equal(calls, 3);
});

test("refusals carry the contract's error code and change nothing", async () => {
  const user = `js-${randomUUID()}`;
  await grant(user, "chat", 10);
  const client = new UserCreditsClient({ url: URL_, token: sign(user) });
  await assert.rejects(
    client.consume({ offerGroup: "chat", tokens: 11 }),
    (error) => error instanceof UserCreditsError && error.code === "INSUFFICIENT_TOKENS",
  );
  await assert.rejects(
    client.consume({ offerGroup: "chat", tokens: 0 }),
    (error) => error instanceof UserCreditsError && error.code === "BAD_USER_INPUT",
  );
  assert.deepEqual(
    (await ledger(client, "chat")).map((e) => e.tokens),
    [10],
  );
});

test("withReservation commits what the job used, and releases when it fails", async () => {
  const user = `js-${randomUUID()}`;
  await grant(user, "chat", 100);
  const client = new UserCreditsClient({ url: URL_, token: sign(user) });

  const done = await client.withReservation("chat", 20, async (reservation) => {
    assert.equal(reservation.tokens, 20);
    return { used: 12, result: "summary" };
  });
  assert.equal(done.result, "summary");
  assert.equal(done.entry.tokens, -12);
  assert.equal(done.entry.balanceAfter, 88);

  await assert.rejects(
    client.withReservation("chat", 30, async () => {
      throw new Error("the job broke");
    }),
    /the job broke/,
  );
  // Nothing used: released, not committed (a commit of 0 tokens is refused).
  const idle = await client.withReservation("chat", 5, async () => ({ used: 0, result: 0 }));
  assert.equal(idle.entry, null);
  // A commit the service refuses (more than held) gives the tokens back too.
  await assert.rejects(
    client.withReservation("chat", 5, async () => ({ used: 6, result: 0 })),
    (error) => error.code === "BAD_USER_INPUT",
  );
  const [balance] = (await client.request("{ wallet { balances { tokens reserved } } }", {}))
    .wallet.balances;
  assert.deepEqual(balance, { tokens: 88, reserved: 0 });
  assert.deepEqual(
    (await ledger(client, "chat")).map((e) => [e.tokens, e.reason]),
    [
      [5, "release"],
      [-5, "reservation"],
      [5, "release"],
      [-5, "reservation"],
      [30, "release"],
      [-30, "reservation"],
      [-12, "consumption"], // one entry: the hold of 20 released, 12 of it spent
      [-20, "reservation"],
      [100, "grant"],
    ],
  );
});

test("buy pays in the sandbox and credits the offer's tokens", async (t) => {
  const user = `js-${randomUUID()}`;
  const UPSERT = `mutation($input: OfferInput!) { upsertOffer(input: $input) { id } }`;
  const offer = (
    await admin.request(UPSERT, {
      input: {
        name: "Chat pack",
        kind: "TOKENS",
        offerGroup: "chat",
        tokenCount: 500,
        prices: [{ amount: "4.99", currency: "USD" }],
        cycle: "ONCE",
      },
    })
  ).upsertOffer;
  const client = new UserCreditsClient({ url: URL_, token: sign(user) });
  assert.ok((await client.offers("chat")).some((o) => o.id === offer.id));

  const seen = recorder();
  const watch = client.watchBalances({}, (update) => seen.push(update));
  t.after(() => watch.stop());
  await seen.next(() => true);
  const order = await client.buy(offer.id);
  assert.equal(order.status, "PAID");
  assert.equal(order.tokenCount, 500);
  const credited = await seen.next((u) => tokensOf(u, "chat") === 500);
  assert.equal(credited.event?.delta, 500, "the first event of a group comes with its read");
  assert.equal(credited.event.reason, "purchase");

  // With Stripe.js the confirmation is Stripe's; a refusal comes back as PAYMENT_FAILED.
  const confirmations = [];
  const refusing = {
    confirmCardPayment: async (...args) => {
      confirmations.push(args);
      return { error: { message: "Your card was declined." } };
    },
  };
  await assert.rejects(
    client.buy(offer.id, { stripe: refusing, paymentMethod: "pm_card_visa" }),
    (error) => error.code === "PAYMENT_FAILED" && /declined/.test(error.message),
  );
  assert.equal(confirmations.length, 1);
  const [secret, data] = confirmations[0];
  assert.match(secret, /_secret_/);
  assert.deepEqual(data, { payment_method: "pm_card_visa" });
});

test("subscribe pays a plan's first period in the sandbox; cancel and resume change it", async (t) => {
  const user = `js-${randomUUID()}`;
  const UPSERT = `mutation($input: OfferInput!) { upsertOffer(input: $input) { id } }`;
  const offer = (
    await admin.request(UPSERT, {
      input: {
        name: "Pro monthly",
        kind: "SUBSCRIPTION",
        offerGroup: "pro",
        tokenCount: 300,
        prices: [{ amount: "9.99", currency: "USD" }],
        cycle: "MONTHLY",
      },
    })
  ).upsertOffer;
  const client = new UserCreditsClient({ url: URL_, token: sign(user) });
  const seen = recorder();
  const watch = client.watchBalances({}, (update) => seen.push(update));
  t.after(() => watch.stop());
  await seen.next(() => true);

  const plan = await client.subscribe(offer.id);
  assert.equal(plan.status, "ACTIVE");
  assert.equal(plan.offerGroup, "pro");
  assert.ok(new Date(plan.currentPeriodEnd) > new Date(plan.currentPeriodStart));
  await seen.next((u) => tokensOf(u, "pro") === 300);
  assert.deepEqual(
    (await client.plans()).map((p) => p.id),
    [plan.id],
  );

  assert.equal((await client.cancelPlan(plan.id)).cancelAtPeriodEnd, true);
  assert.equal((await client.resumePlan(plan.id)).cancelAtPeriodEnd, false);
  const ended = await client.cancelPlan(plan.id, false);
  assert.equal(ended.status, "CANCELED");
  await assert.rejects(client.resumePlan(plan.id), (error) => error.code === "CONFLICT");
  assert.equal((await ledger(client, "pro")).length, 1, "one period credited, once");
});
