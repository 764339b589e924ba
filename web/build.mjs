// Builds the join page into web/dist:
//   dist/index.html              (from index.html, pointing at the hashed files under /assets/)
//   dist/assets/app-<hash>.js    (src/main.ts bundled and minified, ES2020)
//   dist/assets/app-<hash>.css   (src/styles.css, imported by main.ts)
//   dist/assets/e2ee-worker-<hash>.js (livekit-client's end-to-end encryption worker, loaded
//                                only in an encrypted room; the app knows its name)
//   dist/assets/js/main-module.js and dist/assets/css/main.css: the client files the edge names
//                                at `/auth/getClientFiles`, which plugNmeet's CMS plugins load into
//                                their own page; each only imports the hashed file of its kind
//   dist/_headers                (Workers static assets: any origin may load /assets/*)
// and a gzip (level 9) sibling `<file>.gz` next to every file it makes smaller. Type-checks first (tsc); exits
// non-zero on any type or build error. Run from anywhere: `node web/build.mjs`.

import { spawnSync } from 'node:child_process';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { constants, gzipSync } from 'node:zlib';

import { build } from 'esbuild';

const root = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(root, 'dist');
const assets = path.join(dist, 'assets');
const require = createRequire(import.meta.url);

function fail(message) {
  console.error(`build failed: ${message}`);
  process.exit(1);
}

// 1. Type check.
const tsc = require.resolve('typescript/bin/tsc');
const check = spawnSync(process.execPath, [tsc, '--noEmit', '-p', root], { cwd: root, stdio: 'inherit' });
if (check.error) fail(`could not run tsc: ${check.error.message}`);
if (check.status !== 0) fail('type errors (tsc --noEmit)');

// 2. Bundle.
await rm(dist, { recursive: true, force: true });
await mkdir(assets, { recursive: true });

// The worker first: the app is built knowing its file name.
async function bundle(entryPoints, define = {}) {
  try {
    return await build({
      absWorkingDir: root,
      entryPoints,
      bundle: true,
      minify: true,
      format: 'esm',
      target: 'es2020',
      platform: 'browser',
      outdir: assets,
      entryNames: '[name]-[hash]',
      assetNames: 'app-[hash]',
      chunkNames: 'app-[hash]',
      metafile: true,
      sourcemap: false,
      legalComments: 'eof',
      charset: 'utf8',
      define: { 'process.env.NODE_ENV': '"production"', ...define },
      logLevel: 'warning',
    });
  } catch {
    fail('esbuild reported errors');
  }
}

const workerBuild = await bundle({ 'e2ee-worker': 'livekit-client/e2ee-worker' });
const workerOut = Object.keys(workerBuild.metafile.outputs).find((file) =>
  path.basename(file).startsWith('e2ee-worker-'),
);
if (!workerOut) fail('no output for the E2EE worker');
const result = await bundle(
  { app: 'src/main.ts' },
  { __EDGEMEET_E2EE_WORKER__: JSON.stringify(path.basename(workerOut)) },
);

const entry = Object.entries(result.metafile.outputs).find(([, out]) => out.entryPoint === 'src/main.ts');
if (!entry) fail('no output for src/main.ts');
const [jsOut, jsMeta] = entry;
const cssOut = jsMeta.cssBundle;
if (!cssOut) fail('no CSS bundle (src/main.ts must import ./styles.css)');
const assetUrl = (file) => `/assets/${path.basename(file)}`;

// 3. index.html.
let html = await readFile(path.join(root, 'index.html'), 'utf8');
for (const [placeholder, file] of [
  ['__APP_JS__', jsOut],
  ['__APP_CSS__', cssOut],
]) {
  const count = html.split(placeholder).length - 1;
  if (count !== 1) fail(`index.html must contain ${placeholder} exactly once (found ${count})`);
  html = html.replace(placeholder, assetUrl(file));
}
if (/<script(?![^>]*\bsrc=)[^>]*>/i.test(html) || /\sstyle=|<style/i.test(html)) {
  fail('index.html must have no inline scripts or styles (CSP)');
}
await writeFile(path.join(dist, 'index.html'), html);

// 3b. The client files for plugNmeet's CMS plugins (names fixed: the edge answers
// `/auth/getClientFiles` with CLIENT_JS_FILES and CLIENT_CSS_FILES of edge-api/src/web.rs).
// They are fetched on every page load (no-cache) and only load the immutable hashed files,
// relative to themselves. A dynamic import works both in a module script (current plugins load
// `main-module.*` so) and in a classic deferred one (older plugins load every file so). A
// classic script from another origin has no base URL for it, so there the path is made absolute
// from the script's own (`document.currentScript`, which a module does not have).
await mkdir(path.join(assets, 'js'));
await mkdir(path.join(assets, 'css'));
const app = JSON.stringify(`../${path.basename(jsOut)}`);
await writeFile(
  path.join(assets, 'js', 'main-module.js'),
  `import(document.currentScript ? new URL(${app}, document.currentScript.src).href : ${app});\n`,
);
await writeFile(path.join(assets, 'css', 'main.css'), `@import url('../${path.basename(cssOut)}');\n`);

// 4. Gzip siblings.
async function files(dir) {
  const out = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await files(full)));
    else if (!entry.name.endsWith('.gz')) out.push(full);
  }
  return out.sort();
}

const rows = [];
for (const file of await files(dist)) {
  const body = await readFile(file);
  const gz = gzipSync(body, { level: constants.Z_BEST_COMPRESSION });
  // A tiny file (the CMS plugins' client files) is smaller as it is: served plain.
  const smaller = gz.length < body.length;
  if (smaller) await writeFile(`${file}.gz`, gz);
  rows.push([path.relative(root, file), body.length, smaller ? gz.length : '-']);
}
const width = Math.max(...rows.map(([name]) => name.length));
for (const [name, size, gzSize] of rows) {
  console.log(`${name.padEnd(width)}  ${String(size).padStart(8)} B  gzip ${String(gzSize).padStart(7)} B`);
}

// 5. On Workers the platform compresses by itself: upload neither the .gz siblings nor the
// bootstrap's build stamp as static assets (wrangler reads this file; it is not served).
await writeFile(path.join(dist, '.assetsignore'), '*.gz\n.sources.sha256\n');

// 6. On Workers the platform serves /assets/* itself: a CMS plugin's page (another origin) loads
// the client as ES modules, which the browser fetches with CORS. The edge's other platforms
// add the same header (edge-api/src/web.rs). Written after the gzip step: it is not served.
await writeFile(path.join(dist, '_headers'), '/assets/*\n  Access-Control-Allow-Origin: *\n');
