"""The GraphQL types of the contract (../shared/contract.graphql and the exported
schema.graphql): outputs, inputs, the context, the error codes and the query limits. The
root types that wire them to the resolvers, and the schema, are in usercredits/api.py, so
that the resolvers can use these types without an import cycle."""
