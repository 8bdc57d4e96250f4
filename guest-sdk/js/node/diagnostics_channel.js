// `node:diagnostics_channel`: named channels with subscribers (publish calls
// them synchronously, as in Node), `tracingChannel` over five of them.

const channels = new Map();

export class Channel {
  #subscribers = new Set();
  constructor(name) {
    this.name = name;
  }
  get hasSubscribers() {
    return this.#subscribers.size > 0;
  }
  subscribe(fn) {
    this.#subscribers.add(fn);
  }
  unsubscribe(fn) {
    return this.#subscribers.delete(fn);
  }
  publish(message) {
    for (const fn of [...this.#subscribers]) {
      try {
        fn(message, this.name);
      } catch (e) {
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }
  bindStore() {}
  unbindStore() {
    return false;
  }
  runStores(data, fn, thisArg, ...args) {
    this.publish(data);
    return fn.apply(thisArg, args);
  }
}

export function channel(name) {
  let c = channels.get(name);
  if (c === undefined) channels.set(name, (c = new Channel(name)));
  return c;
}
export const hasSubscribers = (name) => channels.get(name)?.hasSubscribers ?? false;
export const subscribe = (name, fn) => channel(name).subscribe(fn);
export const unsubscribe = (name, fn) => channel(name).unsubscribe(fn);

export function tracingChannel(nameOrChannels) {
  const names = ['start', 'end', 'asyncStart', 'asyncEnd', 'error'];
  const c =
    typeof nameOrChannels === 'string'
      ? Object.fromEntries(names.map((n) => [n, channel(`tracing:${nameOrChannels}:${n}`)]))
      : nameOrChannels;
  return {
    ...c,
    get hasSubscribers() {
      return names.some((n) => c[n].hasSubscribers);
    },
    subscribe(handlers) {
      for (const n of names) if (handlers[n]) c[n].subscribe(handlers[n]);
    },
    unsubscribe(handlers) {
      for (const n of names) if (handlers[n]) c[n].unsubscribe(handlers[n]);
    },
    traceSync(fn, context = {}, thisArg, ...args) {
      c.start.publish(context);
      try {
        const result = fn.apply(thisArg, args);
        context.result = result;
        return result;
      } catch (error) {
        context.error = error;
        c.error.publish(context);
        throw error;
      } finally {
        c.end.publish(context);
      }
    },
    async tracePromise(fn, context = {}, thisArg, ...args) {
      c.start.publish(context);
      try {
        const result = await fn.apply(thisArg, args);
        context.result = result;
        c.asyncEnd.publish(context);
        return result;
      } catch (error) {
        context.error = error;
        c.error.publish(context);
        throw error;
      } finally {
        c.end.publish(context);
      }
    },
  };
}

export default { channel, hasSubscribers, subscribe, unsubscribe, tracingChannel, Channel };
