// A module that runs when an instance starts rather than when the component is
// built: `dohost build` exports a project's classes and Worker as
// `lazy(() => import(main).then((m) => m.Name))`, so the project's top level
// runs in every new instance, as in a fresh isolate on Cloudflare —
// `Math.random()`, `Date.now()` and host calls there behave as at run time —
// instead of once in the build's snapshot. Imports nothing of the host.

const LAZY = Symbol.for('dohost.lazy');

/** Wraps a loader: the value is `await load()`, loaded at the first event. */
export function lazy(load) {
  if (typeof load !== 'function') throw new TypeError('lazy(load): load must be a function');
  return { [LAZY]: load };
}

/** The value itself, or what its loader gives. */
export async function resolveLazy(value) {
  return value !== null && typeof value === 'object' && typeof value[LAZY] === 'function' ? value[LAZY]() : value;
}

/** Whether `value` is a `lazy(...)` wrapper. */
export function isLazy(value) {
  return value !== null && typeof value === 'object' && typeof value[LAZY] === 'function';
}
