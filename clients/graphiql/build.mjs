// Bundles GraphiQL, React and this page's script into one script and one stylesheet,
// with their fonts and images inlined, in usercredits/server/graphiql/assets (or the
// folder named as the first argument): the server serves them from there, so the page
// needs no network beyond the server.
import { build } from "esbuild";

await build({
  entryPoints: { graphiql: "src/main.jsx" },
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  charset: "utf8",
  legalComments: "eof",
  loader: { ".woff": "dataurl", ".woff2": "dataurl", ".ttf": "dataurl", ".svg": "dataurl" },
  define: { "process.env.NODE_ENV": '"production"' },
  logLevel: "warning",
  outdir: process.argv[2] ?? "../../usercredits/server/graphiql/assets",
});
