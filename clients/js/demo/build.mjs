// Bundles the demo page's script with the kit into the file the service serves
// (usercredits/server/demo/demo.js), or into the file named as the first argument.
import { build } from "esbuild";

await build({
  entryPoints: ["demo/main.ts"],
  bundle: true,
  format: "esm",
  target: "es2022",
  charset: "utf8",
  legalComments: "none",
  logLevel: "warning",
  outfile: process.argv[2] ?? "../../usercredits/server/demo/demo.js",
});
