// Builds a Cloudflare-style project (`dohost build`): bundles its `main`
// module once per Durable Object class and once for its Worker entry with
// esbuild (TypeScript, npm packages, `cloudflare:workers` resolved to the SDK,
// wrangler's default module rules), then makes each bundle a component with
// componentize-js. Run by `dohost build` with one argument, a JSON plan:
//   { "sdk": "<repo root>", "project": "<dir>", "main": "src/index.ts",
//     "classes": ["MyDurableObject"], "out": "<dir>/.dohost" }
// Prints one line per step and each component's size and build time. Each
// shim loads the SDK's globals.js first, before the project's modules run.

import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';

const plan = JSON.parse(await readFile(process.argv[2], 'utf8'));
const sdk = resolve(plan.sdk);
const project = resolve(plan.project);
const out = resolve(plan.out);
const main = resolve(project, plan.main);
const js = (file) => JSON.stringify(join(sdk, 'guest-sdk', 'js', file));

// wrangler's Data rule gives an ArrayBuffer (esbuild's binary loader a Uint8Array);
// CompiledWasm cannot work: StarlingMonkey has no WebAssembly.
const wranglerRules = {
  name: 'wrangler-rules',
  setup(b) {
    b.onLoad({ filter: /\.bin$/, namespace: 'file' }, (a) => ({
      contents: `import u8 from ${JSON.stringify(`${a.path}?u8`)}; export default u8.buffer;`,
      loader: 'js',
    }));
    b.onResolve({ filter: /\?u8$/ }, (a) => ({ path: a.path.slice(0, -3), namespace: 'cf-u8' }));
    b.onLoad({ filter: /.*/, namespace: 'cf-u8' }, async (a) => ({ contents: await readFile(a.path), loader: 'binary' }));
    b.onResolve({ filter: /\.wasm(\?module)?$/ }, () => ({
      errors: [{ text: 'WebAssembly modules are not supported (StarlingMonkey has no WebAssembly global)' }],
    }));
    b.onResolve({ filter: /^node:/ }, (a) => ({
      errors: [{ text: `${a.path} is not supported yet (no nodejs_compat on dohost)` }],
    }));
  },
};

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
    loader: { '.html': 'text', '.txt': 'text', '.sql': 'text' },
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
  return outfile;
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
  for (const name of plan.classes) {
    console.log(`== class ${name}`);
    const outfile = await bundle(
      name,
      `import ${js('globals.js')};\nimport { ${name} as Class } from ${JSON.stringify(main)};\n` +
        `import { exportDynamic, exportObject } from ${js('index.js')};\nexport { timerEvents } from ${js('index.js')};\n` +
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
      `import ${js('globals.js')};\nimport worker from ${JSON.stringify(main)};\nimport { serveWorker } from ${js('entry.js')};\n` +
        'const served = serveWorker(worker);\nexport const incomingHandler = served.incomingHandler;\nexport const reuse = served.reuse;\n',
      { entry: true },
    );
    await componentize('entry', outfile, join(sdk, 'wit', 'entry'), 'entry');
  }
}
