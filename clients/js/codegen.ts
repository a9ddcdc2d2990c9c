// Generates src/generated.ts, the types of every operation in src/operations.graphql, from
// the service's exported schema. `npm run codegen -- --check` fails when it is stale.
import type { CodegenConfig } from "@graphql-codegen/cli";

const config: CodegenConfig = {
  schema: ["../../schema.graphql", "sandbox.graphql"],
  documents: ["src/operations.graphql"],
  generates: {
    "src/generated.ts": {
      plugins: ["typescript-operations", "typed-document-node"],
      config: {
        documentMode: "string",
        enumsAsTypes: true,
        useTypeImports: true,
        avoidOptionals: { field: true, inputValue: false, object: true },
        scalars: { DateTime: "string", ID: "string" },
      },
    },
  },
};

export default config;
