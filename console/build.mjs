// Builds the console into dist/: one script (src/main.js with what it imports, uPlot and yaml
// included), one stylesheet, the page and its icon. The binary embeds dist/ (crates/api/src/
// console.rs), so building the binary never needs Node.
//
// `node build.mjs --check` builds into a temporary directory and fails when dist/ differs from
// it: the committed files must be exactly what these sources and the locked packages give.
import * as esbuild from 'esbuild';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const here = new URL('.', import.meta.url).pathname;
const check = process.argv.includes('--check');
const out = check ? mkdtempSync(join(tmpdir(), 'console-')) : join(here, 'dist');
mkdirSync(out, { recursive: true });

// The bundled packages' licenses, kept with the code they cover.
const notice = ['uplot', 'yaml'].map((name) => {
  const meta = JSON.parse(readFileSync(join(here, 'node_modules', name, 'package.json'), 'utf8'));
  const license = readFileSync(join(here, 'node_modules', name, 'LICENSE'), 'utf8').trim();
  return `${meta.name} ${meta.version} (${meta.license}):\n${license}`;
}).join('\n\n');

await esbuild.build({
  entryPoints: { app: join(here, 'src/main.js'), 'app-style': join(here, 'src/style.css') },
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['es2022', 'chrome110', 'firefox110', 'safari16'],
  legalComments: 'eof',
  charset: 'utf8',
  outdir: out,
  logLevel: 'warning',
  footer: { js: `/*! Bundled third-party code:\n\n${notice.replace(/\*\//g, '* /')}\n*/` },
});
// One stylesheet named for what it is (esbuild names CSS after its entry point).
copyFileSync(join(out, 'app-style.css'), join(out, 'app.css'));
rmSync(join(out, 'app-style.css'));
for (const file of ['index.html', 'favicon.svg']) {
  copyFileSync(join(here, 'src', file), join(out, file));
}

if (check) {
  const committed = join(here, 'dist');
  const names = (dir) => readdirSync(dir).sort();
  const differ = [];
  const all = new Set([...names(out), ...names(committed)]);
  for (const name of all) {
    let a, b;
    try { a = readFileSync(join(out, name)); } catch { a = null; }
    try { b = readFileSync(join(committed, name)); } catch { b = null; }
    if (!a || !b || !a.equals(b)) differ.push(name);
  }
  rmSync(out, { recursive: true });
  if (differ.length) {
    console.error(`console/dist differs from a fresh build in: ${differ.join(', ')}; run \`npm run build\` in console/ and commit dist/`);
    process.exit(1);
  }
  console.log('console/dist is what the sources build');
}
