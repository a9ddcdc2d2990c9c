// The kit where the runtime has no global WebSocket, as on Node 20 (package.json allows
// it): the global is removed before any test, as Node 20 never had it. Run by
// tests/test_client_js.py against a real server, like client.test.mjs.
import assert from "node:assert/strict";
import { createHmac, randomUUID } from "node:crypto";
import { test } from "node:test";

import WebSocket from "ws";

import { UserCreditsClient } from "../dist/index.js";

delete globalThis.WebSocket;

const URL_ = process.env.USERCREDITS_URL;
const SECRET = process.env.USERCREDITS_JWT_SECRET;
assert.ok(URL_ && SECRET, "run through tests/test_client_js.py");

function sign(userId, roles = ["user"]) {
  const part = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const unsigned = `${part({ alg: "HS256", typ: "JWT" })}.${part({ sub: userId, roles, iat: now, exp: now + 600 })}`;
  return `${unsigned}.${createHmac("sha256", SECRET).update(unsigned).digest("base64url")}`;
}

test("without a WebSocket to use, watchBalances says what to install", () => {
  assert.equal(typeof globalThis.WebSocket, "undefined");
  const client = new UserCreditsClient({ url: URL_, token: sign("nobody") });
  assert.throws(
    () => client.watchBalances({}, () => undefined),
    /no global WebSocket \(Node 20\): `npm i ws` and pass `webSocketImpl: WebSocket`/,
  );
});

test("with webSocketImpl from ws, balances are followed live", async (t) => {
  const user = `js-${randomUUID()}`;
  const admin = new UserCreditsClient({ url: URL_, token: sign("admin", ["admin"]) });
  await admin.request(
    `mutation($input: GrantTokensInput!) { grantTokens(input: $input) { balanceAfter } }`,
    { input: { userId: user, offerGroup: "chat", tokens: 10, idempotencyKey: randomUUID() } },
  );
  const client = new UserCreditsClient({ url: URL_, token: sign(user), webSocketImpl: WebSocket });
  const updates = [];
  let changed;
  const live = new Promise((resolve) => {
    changed = resolve;
  });
  const watch = client.watchBalances({ offerGroup: "chat" }, (update) => {
    updates.push(update);
    if (update.event !== null) changed(update);
  });
  t.after(() => watch.stop());
  for (let waited = 0; updates.length === 0; waited += 50) {
    assert.ok(waited < 10_000, "no first read of the balances");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.equal(updates[0].balances[0].tokens, 10);
  await client.consume({ offerGroup: "chat", tokens: 4 });
  const update = await live;
  assert.deepEqual([update.event.delta, update.balances[0].tokens], [-4, 6]);
});
