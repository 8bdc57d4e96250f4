// Builds a Cloudflare-style project (`dohost build`): bundles its `main`
// module once per Durable Object class and once for its Worker entry with
// esbuild (TypeScript, npm packages, `cloudflare:workers` resolved to the SDK,
// wrangler's default module rules), then makes each bundle a component with
// componentize-js. Run by `dohost build` with one argument, a JSON plan:
//   { "sdk": "<repo root>", "project": "<dir>", "main": "src/index.ts",
//     "classes": ["MyDurableObject"], "out": "<dir>/.dohost" }
// Prints one line per step and each component's size and build time. Each
// shim loads the SDK's globals.js first; the project's modules are imported
// lazily (lazy.js), so their top level runs when an instance starts, not in
// the build's snapshot.

import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { appendFile, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';

const plan = JSON.parse(await readFile(process.argv[2], 'utf8'));
const sdk = resolve(plan.sdk);
const project = resolve(plan.project);
const out = resolve(plan.out);
const main = resolve(project, plan.main);
const js = (file) => JSON.stringify(join(sdk, 'guest-sdk', 'js', file));

// wrangler's module rules: the project's `rules` first, then the defaults (a
// rule with `fallthrough: false` hides the later rules of its type). Text gives
// a string, Data an ArrayBuffer (esbuild's binary loader gives a Uint8Array);
// CompiledWasm cannot work: StarlingMonkey has no WebAssembly.
const DEFAULT_RULES = [
  { type: 'Text', globs: ['**/*.txt', '**/*.html', '**/*.sql'] },
  { type: 'Data', globs: ['**/*.bin'] },
  { type: 'CompiledWasm', globs: ['**/*.wasm', '**/*.wasm?module'] },
];

// A wrangler glob (`**/*.html`, `src/*.txt`) → a RegExp on the project-relative path.
function globRegExp(glob) {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*' && glob[i + 1] === '*') {
      re += glob[i + 2] === '/' ? '(?:.*/)?' : '.*';
      i += glob[i + 2] === '/' ? 2 : 1;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

function moduleRules(projectRules) {
  const rules = [];
  const closed = new Set();
  for (const rule of [...projectRules, ...DEFAULT_RULES]) {
    if (closed.has(rule.type)) continue;
    rules.push({ type: rule.type, globs: rule.globs.map(globRegExp) });
    if (rule.fallthrough === false) closed.add(rule.type);
  }
  return rules;
}

const rules = moduleRules(plan.rules ?? []);
const ruleOf = (path) => rules.find((r) => r.globs.some((g) => g.test(path)))?.type;

const wranglerRules = {
  name: 'wrangler-rules',
  setup(b) {
    b.onResolve({ filter: /\?module$/ }, (a) => ({ path: resolve(a.resolveDir, a.path.slice(0, -7)) }));
    b.onLoad({ filter: /.*/, namespace: 'file' }, async (a) => {
      const type = ruleOf(relative(project, a.path).split('\\').join('/'));
      if (type === 'Text') return { contents: await readFile(a.path, 'utf8'), loader: 'text' };
      if (type === 'Data') {
        return { contents: `import u8 from ${JSON.stringify(`${a.path}?u8`)}; export default u8.buffer;`, loader: 'js', resolveDir: project };
      }
      if (type === 'CompiledWasm') {
        return { errors: [{ text: 'WebAssembly modules are not supported (StarlingMonkey has no WebAssembly global)' }] };
      }
      return undefined; // ESModule, CommonJS or no rule: esbuild's own loaders
    });
    b.onResolve({ filter: /\?u8$/ }, (a) => ({ path: a.path.slice(0, -3), namespace: 'cf-u8' }));
    b.onLoad({ filter: /.*/, namespace: 'cf-u8' }, async (a) => ({ contents: await readFile(a.path), loader: 'binary' }));
    b.onResolve({ filter: /^node:/ }, (a) => nodeModule(a.path.slice(5)));
    b.onResolve({ filter: BARE_NODE }, (a) => (plan.nodejsCompat ? nodeModule(a.path) : undefined));
  },
};

// `node:` modules of a `nodejs_compat` project: the SDK's (guest-sdk/js/node/)
// or a pinned npm package. Any other is a build error that names it.
const nodeFile = (name) => join(sdk, 'guest-sdk', 'js', 'node', `${name}.js`);
const NODE_MODULES = {
  buffer: join(sdk, 'node_modules', 'buffer', 'index.js'),
  events: join(sdk, 'node_modules', 'events', 'events.js'),
  async_hooks: nodeFile('async_hooks'),
  crypto: nodeFile('crypto'),
  diagnostics_channel: nodeFile('diagnostics_channel'),
  process: nodeFile('process'),
  timers: nodeFile('timers'),
  util: nodeFile('util'),
};
const BARE_NODE = new RegExp(`^(${Object.keys(NODE_MODULES).join('|')})$`);

function nodeModule(name) {
  const supported = Object.keys(NODE_MODULES).map((n) => `node:${n}`).join(', ');
  if (!plan.nodejsCompat) {
    return { errors: [{ text: `node:${name} needs the nodejs_compat compatibility flag (add it to compatibility_flags; dohost then provides ${supported})` }] };
  }
  if (NODE_MODULES[name] === undefined) {
    return { errors: [{ text: `node:${name} is not supported on dohost (its nodejs_compat has ${supported})` }] };
  }
  return { path: NODE_MODULES[name] };
}

function options(entry) {
  return {
    absWorkingDir: project,
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    target: 'es2022',
    mainFields: ['module', 'main'],
    conditions: ['workerd', 'worker', 'browser'],
    alias: { 'cloudflare:workers': join(sdk, 'guest-sdk', 'js', entry ? 'cloudflare-workers-entry.js' : 'cloudflare-workers.js') },
    define: { 'process.env.NODE_ENV': '"production"' },
    external: ['dohost:*', 'wasi:*'],
    plugins: [wranglerRules],
    legalComments: 'none',
    logLevel: 'error',
  };
}

async function bundle(name, source, { entry = false } = {}) {
  const shim = join(out, `${name}.shim.js`);
  await writeFile(shim, source);
  const outfile = join(out, `${name}.js`);
  await build({ ...options(entry), entryPoints: [shim], sourcemap: 'external', sourcesContent: false, outfile });
  await embedSourceMap(outfile, `${name}.js`);
  return outfile;
}

// Appends the bundle's source map to it (globals.js maps stack frames with it:
// guest-sdk/js/sourcemap.js). At the end, so no line of the bundle moves.
// Sources read as the project's paths, the SDK's as `dohost-sdk/…`.
async function embedSourceMap(outfile, file) {
  const map = JSON.parse(await readFile(`${outfile}.map`, 'utf8'));
  const sources = map.sources.map((s) => {
    const path = resolve(out, s);
    const inProject = relative(project, path);
    const inSdk = relative(sdk, path);
    return !inProject.startsWith('..') || inSdk.startsWith('..') ? inProject : `dohost-sdk/${inSdk}`;
  });
  const embedded = { file, sources, mappings: map.mappings };
  await appendFile(outfile, `\nglobalThis[Symbol.for('dohost.sourcemap')] = ${JSON.stringify(embedded)};\n`);
}

function componentize(name, bundled, wit, world) {
  const started = Date.now();
  const wasm = join(out, `${name}.wasm`);
  // componentize-js maps its working directory into the component: the bundle must be under it.
  const args = ['--wit', wit, '--world-name', world, '--disable', 'fetch-event', '-o', wasm, relative(out, bundled)];
  const run = spawnSync(join(sdk, 'node_modules', '.bin', 'componentize-js'), args, { cwd: out, stdio: 'inherit' });
  if (run.status !== 0) throw new Error(`componentize-js failed for ${name} (exit ${run.status})`);
  return stat(wasm).then((s) => console.log(`   ${name}.wasm: ${(s.size / 1e6).toFixed(1)} MB, ${((Date.now() - started) / 1000).toFixed(1)} s`));
}

// What the main module exports: its classes must be there; a default export is the entry.
async function exportsOfMain() {
  const probe = await build({ ...options(false), entryPoints: [main], metafile: true, write: false, outdir: out });
  return new Set(Object.values(probe.metafile.outputs).flatMap((o) => o.exports));
}

try {
  const exported = await exportsOfMain();
  for (const name of plan.classes) {
    if (!exported.has(name)) throw new Error(`${plan.main} does not export the class ${name} that the wrangler config names`);
  }
  await buildAll(exported);
} catch (e) {
  // esbuild has printed its errors (file:line:column, relative to the project).
  if (!Array.isArray(e.errors)) console.error(`error: ${e.message}`);
  process.exit(1);
}

async function buildAll(exported) {
  // A nodejs_compat project gets Node's globals (process, Buffer) before its modules run.
  const globals = `import ${js('globals.js')};\n` + (plan.nodejsCompat ? `import ${js('node/globals.js')};\n` : '');
  for (const name of plan.classes) {
    console.log(`== class ${name}`);
    const outfile = await bundle(
      name,
      `${globals}import { exportDynamic, exportObject, lazy } from ${js('index.js')};\nexport { timerEvents } from ${js('index.js')};\n` +
        `const Class = lazy(() => import(${JSON.stringify(main)}).then((m) => m.${name}));\n` +
        'export const handler = exportObject(Class);\nexport const dynamic = exportDynamic(Class);\n',
    );
    await componentize(name, outfile, join(sdk, 'wit'), 'js-object');
  }
  // A Worker removed since the last build must not stay in the manifest.
  if (!exported.has('default')) await rm(join(out, 'entry.wasm'), { force: true });
  if (exported.has('default')) {
    console.log('== entry (the default export)');
    const outfile = await bundle(
      'entry',
      `${globals}import { serveWorker } from ${js('entry.js')};\nimport { lazy } from ${js('lazy.js')};\n` +
        `const served = serveWorker(lazy(() => import(${JSON.stringify(main)}).then((m) => m.default)));\n` +
        'export const incomingHandler = served.incomingHandler;\nexport const reuse = served.reuse;\n',
      { entry: true },
    );
    await componentize('entry', outfile, join(sdk, 'wit', 'entry'), 'entry');
  }
}
