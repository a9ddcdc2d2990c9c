"""UserCredits GraphQL: a pay-as-you-go credits service (offers, orders, token wallets
with a ledger, Stripe payments, live GraphQL balances).

- `usercredits.values`: the frozen values the layers pass each other;
- `usercredits.models`: the documents and their indexes;
- `usercredits.services`: the domain, usable from Python without GraphQL or HTTP;
- `usercredits.schema`, `usercredits.resolvers`: the GraphQL types and their resolvers,
  which `usercredits.api` assembles into the schema;
- `usercredits.server`: settings, the aiohttp app, the command line (`usercredits`).

One import package, so that installing the service puts nothing else at the top level of
an environment: `schema` or `models` there stay whoever else's they are.
"""
