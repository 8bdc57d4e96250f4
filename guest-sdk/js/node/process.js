// `node:process` and the global `process` of a `nodejs_compat` project: what
// packages reach for first. `process.env` holds the manifest's vars and secrets
// (strings), filled when an instance is built (env.js), as Cloudflare fills it
// with `nodejs_compat`; it is empty at a module's top level, which runs at build
// time. Imports nothing of the host.

/** Marks the process object env.js fills. */
export const FILL_ENV = Symbol.for('dohost.process.env');

const listeners = new Map();

export const process = {
  [FILL_ENV]: true,
  env: {},
  argv: [],
  execArgv: [],
  platform: 'linux',
  arch: 'wasm32',
  version: 'v22.0.0',
  versions: { node: '22.0.0' },
  release: { name: 'node' },
  pid: 1,
  ppid: 0,
  title: 'dohost',
  browser: false,
  exitCode: undefined,
  cwd: () => '/',
  chdir: () => {
    throw new Error('process.chdir() is not supported on dohost');
  },
  umask: () => 0o22,
  uptime: () => performance.now() / 1000,
  hrtime: Object.assign(
    (prev) => {
      const ns = BigInt(Math.round(performance.now() * 1e6));
      const t = [Number(ns / 1_000_000_000n), Number(ns % 1_000_000_000n)];
      if (!prev) return t;
      let [s, n] = [t[0] - prev[0], t[1] - prev[1]];
      if (n < 0) [s, n] = [s - 1, n + 1e9];
      return [s, n];
    },
    { bigint: () => BigInt(Math.round(performance.now() * 1e6)) },
  ),
  memoryUsage: () => ({ rss: 0, heapTotal: 0, heapUsed: 0, external: 0, arrayBuffers: 0 }),
  nextTick: (fn, ...args) => queueMicrotask(() => fn(...args)),
  emitWarning: (warning) => console.warn(`Warning: ${warning instanceof Error ? warning.message : warning}`),
  exit: (code) => {
    throw new Error(`process.exit(${code ?? ''}) is not supported on dohost: return or throw from the handler`);
  },
  abort: () => {
    throw new Error('process.abort() is not supported on dohost: use ctx.abort()');
  },
  on(name, fn) {
    if (!listeners.has(name)) listeners.set(name, new Set());
    listeners.get(name).add(fn);
    return process;
  },
  off(name, fn) {
    listeners.get(name)?.delete(fn);
    return process;
  },
  emit(name, ...args) {
    const set = listeners.get(name);
    for (const fn of set ?? []) fn(...args);
    return (set?.size ?? 0) > 0;
  },
  listenerCount: (name) => listeners.get(name)?.size ?? 0,
};
process.once = process.on;
process.addListener = process.on;
process.removeListener = process.off;
process.removeAllListeners = (name) => {
  if (name === undefined) listeners.clear();
  else listeners.delete(name);
  return process;
};

export default process;
export const { env, nextTick, platform, version, versions, cwd, hrtime, emitWarning } = process;
