// GraphiQL for UserCredits GraphQL: queries and mutations over HTTP to this page's own
// address, subscriptions over graphql-transport-ws there, signed in with the
// Authorization of the headers pane (the server reads it from connection_init).
import { explorerPlugin } from "@graphiql/plugin-explorer";
import { createGraphiQLFetcher } from "@graphiql/toolkit";
import { GraphiQL } from "graphiql";
import { getOperationAST, parse } from "graphql";
import { createClient } from "graphql-ws";
import { createElement } from "react";
import { createRoot } from "react-dom/client";
import "graphiql/style.css";
import "@graphiql/plugin-explorer/style.css";

const INTRODUCTION = `# UserCredits GraphQL. Reading offers needs no sign-in; everything else
# needs a token, sent from the Headers pane below as
#   {"Authorization": "Bearer <token>"}
# (make one with: .venv/bin/usercredits token --user alice)

{
  offers {
    id
    name
    offerGroup
    tokenCount
    prices {
      amount
      currency
    }
  }
}
`;

const url = `${location.origin}${location.pathname}`;
let headers = {};

/** The headers pane's Authorization, whatever its case. */
function authorization() {
  const name = Object.keys(headers).find((key) => key.toLowerCase() === "authorization");
  return name === undefined ? {} : { authorization: headers[name] };
}

/** Whether the operation to run is a subscription, read from its own text: GraphiQL's
 * parse of the editor lags behind typing, and an operation run before it catches up would
 * be sent over HTTP. */
function isSubscription({ query, operationName }) {
  try {
    return getOperationAST(parse(query), operationName)?.operation === "subscription";
  } catch {
    return false; // the server says what is wrong with it
  }
}

// Lazy: a socket opens for the first subscription and closes after the last, so a
// subscription started after the headers changed signs in with the new ones.
const sockets = createClient({
  url: url.replace(/^http/, "ws"),
  connectionParams: authorization,
});
const fetchOverHttp = createGraphiQLFetcher({ url });

function fetcher(params, options) {
  headers = options?.headers ?? {};
  return isSubscription(params) ? sockets.iterate(params) : fetchOverHttp(params, options);
}

createRoot(document.getElementById("graphiql")).render(
  createElement(GraphiQL, {
    fetcher,
    defaultQuery: INTRODUCTION,
    plugins: [explorerPlugin()],
    isHeadersEditorEnabled: true,
    shouldPersistHeaders: true,
    inputValueDeprecation: true,
  }),
);
