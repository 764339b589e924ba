// Serves the edge's Worker build under Miniflare (workerd, the Workers runtime) for the tests:
//
//   node miniflare_edge.mjs SHIM_MJS MIGRATIONS_DIR BINDINGS_JSON PORT
//
// A local D1 database bound as DB gets every migration in MIGRATIONS_DIR, in order; BINDINGS_JSON
// holds the Worker's vars and secrets. Prints "ready at http://127.0.0.1:PORT" when serving and
// stops when stdin closes. `request.cf` is empty (no network lookup, no location), so the edge
// falls back to its location headers exactly as behind a proxy; EDGEMEET_TEST_CF (a JSON object)
// replaces it, e.g. with Cloudflare's `latitude`/`longitude` for every request. EDGEMEET_WEB_DIR,
// if set, is the join page's directory, served as static assets the way wrangler.toml's
// `[assets]` configures them (the Worker runs first for `/`).
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { createRequire } from "node:module";

// Miniflare is installed by scripts/bootstrap.sh outside the clone; NODE_MODULES_DIR names it.
const require = createRequire(join(process.env.NODE_MODULES_DIR, "noop.js"));
const { Miniflare } = require("miniflare");

const [scriptPath, migrationsDir, bindingsJson, port] = process.argv.slice(2);

/** Splits a migration into statements: `;` at a line's end, a trigger at its `END;`. */
function statements(sql) {
  const out = [];
  let current = [];
  let inTrigger = false;
  for (const line of sql.split("\n")) {
    const trimmed = line.trim();
    if (current.length === 0 && (trimmed === "" || trimmed.startsWith("--"))) continue;
    current.push(line);
    if (/^CREATE TRIGGER/i.test(trimmed)) inTrigger = true;
    const ends = inTrigger ? /^END;$/i.test(trimmed) : trimmed.endsWith(";");
    if (ends) {
      out.push(current.join("\n"));
      current = [];
      inTrigger = false;
    }
  }
  return out;
}

const webDir = process.env.EDGEMEET_WEB_DIR;
const assets =
  webDir && existsSync(webDir)
    ? {
        directory: webDir,
        binding: "ASSETS",
        routerConfig: {
          has_user_worker: true,
          invoke_user_worker_ahead_of_assets: false,
          static_routing: { user_worker: ["/", "/index.html"] },
        },
      }
    : undefined;

const mf = new Miniflare({
  modules: true,
  scriptPath,
  // worker-build's layout: build/worker/shim.mjs imports ../index.js (ES modules) and the wasm.
  modulesRoot: dirname(dirname(scriptPath)),
  modulesRules: [
    { type: "ESModule", include: ["**/*.js", "**/*.mjs"] },
    { type: "CompiledWasm", include: ["**/*.wasm"] },
  ],
  compatibilityDate: "2026-04-26",
  d1Databases: ["DB"],
  bindings: JSON.parse(bindingsJson),
  cf: JSON.parse(process.env.EDGEMEET_TEST_CF || "{}"),
  ...(assets ? { assets } : {}),
  host: "127.0.0.1",
  port: Number(port),
});
const db = await mf.getD1Database("DB");
for (const file of readdirSync(migrationsDir).filter((f) => f.endsWith(".sql")).sort()) {
  for (const statement of statements(readFileSync(join(migrationsDir, file), "utf8"))) {
    await db.prepare(statement).run();
  }
}
const url = await mf.ready;
console.log(`ready at ${url.origin}`);
process.stdin.on("end", async () => {
  await mf.dispose();
  process.exit(0);
});
process.stdin.resume();
