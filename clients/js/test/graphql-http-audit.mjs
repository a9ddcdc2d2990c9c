// Runs graphql-http's audits of the GraphQL-over-HTTP specification against the server at
// the URL given as the first argument, and prints each result as one JSON line
// ({id, name, status, reason}) for the test that started the server to judge.
import { serverAudits } from "graphql-http";

const [url] = process.argv.slice(2);
if (!url) {
  console.error("usage: node test/graphql-http-audit.mjs <graphql url>");
  process.exit(2);
}
for (const audit of serverAudits({ url })) {
  const result = await audit.fn();
  const reason = result.status === "ok" ? "" : result.reason;
  console.log(JSON.stringify({ id: audit.id, name: audit.name, status: result.status, reason }));
}
