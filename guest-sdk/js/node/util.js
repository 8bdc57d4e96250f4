// `node:util`, the parts packages use most: promisify/callbackify, inherits,
// format/inspect (plain, no colours), deprecate, types, isDeepStrictEqual,
// TextEncoder/TextDecoder.

export const TextEncoder = globalThis.TextEncoder;
export const TextDecoder = globalThis.TextDecoder;

const custom = Symbol.for('nodejs.util.promisify.custom');

export function promisify(fn) {
  if (typeof fn !== 'function') throw new TypeError('promisify: the argument must be a function');
  if (fn[custom]) return fn[custom];
  return function promisified(...args) {
    return new Promise((resolve, reject) => fn.call(this, ...args, (err, value) => (err ? reject(err) : resolve(value))));
  };
}
promisify.custom = custom;

export function callbackify(fn) {
  return function callbackified(...args) {
    const callback = args.pop();
    fn.apply(this, args).then(
      (value) => queueMicrotask(() => callback(null, value)),
      (err) => queueMicrotask(() => callback(err ?? new Error('rejected with a falsy reason'))),
    );
  };
}

export function inherits(ctor, superCtor) {
  Object.defineProperty(ctor, 'super_', { value: superCtor, writable: true, configurable: true });
  Object.setPrototypeOf(ctor.prototype, superCtor.prototype);
}

export function inspect(value, options = {}) {
  const depth = options.depth ?? 2;
  const seen = new Set();
  const show = (v, level) => {
    if (typeof v === 'string') return level === 0 ? v : JSON.stringify(v);
    if (typeof v === 'bigint') return `${v}n`;
    if (typeof v === 'function') return `[Function: ${v.name || '(anonymous)'}]`;
    if (typeof v === 'symbol' || v === undefined || v === null || typeof v !== 'object') return String(v);
    if (seen.has(v)) return '[Circular]';
    if (v instanceof Error) return v.stack ?? String(v);
    if (v instanceof Date) return v.toISOString();
    if (level > depth) return Array.isArray(v) ? '[Array]' : '[Object]';
    seen.add(v);
    try {
      if (Array.isArray(v)) return `[ ${v.map((x) => show(x, level + 1)).join(', ')} ]`;
      if (v instanceof Map) return `Map(${v.size}) { ${[...v].map(([k, x]) => `${show(k, level + 1)} => ${show(x, level + 1)}`).join(', ')} }`;
      if (v instanceof Set) return `Set(${v.size}) { ${[...v].map((x) => show(x, level + 1)).join(', ')} }`;
      const entries = Object.entries(v).map(([k, x]) => `${/^[A-Za-z_$][\w$]*$/.test(k) ? k : JSON.stringify(k)}: ${show(x, level + 1)}`);
      return entries.length ? `{ ${entries.join(', ')} }` : '{}';
    } finally {
      seen.delete(v);
    }
  };
  return show(value, 1);
}
inspect.custom = Symbol.for('nodejs.util.inspect.custom');

export function format(first, ...args) {
  if (typeof first !== 'string') return [first, ...args].map((a) => inspect(a)).join(' ');
  let i = 0;
  const out = first.replace(/%[sdifjoOc%]/g, (m) => {
    if (m === '%%') return '%';
    if (i >= args.length) return m;
    const a = args[i++];
    switch (m) {
      case '%s':
        return typeof a === 'string' ? a : inspect(a);
      case '%d':
      case '%i':
        return String(m === '%i' ? parseInt(a, 10) : Number(a));
      case '%f':
        return String(parseFloat(a));
      case '%j':
        return JSON.stringify(a);
      case '%c':
        return '';
      default:
        return inspect(a);
    }
  });
  return [out, ...args.slice(i).map((a) => (typeof a === 'string' ? a : inspect(a)))].join(' ');
}

export function deprecate(fn, message) {
  let warned = false;
  return function deprecated(...args) {
    if (!warned) {
      warned = true;
      console.warn(`DeprecationWarning: ${message}`);
    }
    return fn.apply(this, args);
  };
}

export function isDeepStrictEqual(a, b) {
  if (Object.is(a, b)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  if (a instanceof Date) return a.getTime() === b.getTime();
  if (a instanceof Map || a instanceof Set) {
    if (a.size !== b.size) return false;
    return isDeepStrictEqual([...a], [...b]);
  }
  const ka = Reflect.ownKeys(a);
  const kb = Reflect.ownKeys(b);
  return ka.length === kb.length && ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && isDeepStrictEqual(a[k], b[k]));
}

const tag = (v) => Object.prototype.toString.call(v).slice(8, -1);
export const types = {
  isPromise: (v) => v instanceof Promise,
  isDate: (v) => v instanceof Date,
  isRegExp: (v) => v instanceof RegExp,
  isMap: (v) => v instanceof Map,
  isSet: (v) => v instanceof Set,
  isAsyncFunction: (v) => tag(v) === 'AsyncFunction',
  isGeneratorFunction: (v) => tag(v) === 'GeneratorFunction' || tag(v) === 'AsyncGeneratorFunction',
  isArrayBuffer: (v) => v instanceof ArrayBuffer,
  isArrayBufferView: (v) => ArrayBuffer.isView(v),
  isTypedArray: (v) => ArrayBuffer.isView(v) && !(v instanceof DataView),
  isUint8Array: (v) => v instanceof Uint8Array,
  isNativeError: (v) => v instanceof Error,
};

export default { TextEncoder, TextDecoder, promisify, callbackify, inherits, inspect, format, deprecate, isDeepStrictEqual, types };
