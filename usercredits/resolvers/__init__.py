"""Thin resolvers: take the caller and the services from the context, call one service,
return a schema type. Authorization is the Principal's questions; rules live in services."""
