// Runtime globals a Worker expects that StarlingMonkey lacks or differs on,
// installed when the SDK is loaded (at build time, before the class's or
// Worker's module runs). Imports nothing of the host.
//
// - `navigator.userAgent` ("dohost"), `navigator.hardwareConcurrency` (1, as on Cloudflare).
// - `TextEncoderStream` / `TextDecoderStream` over TransformStream.
// - `err.stack` starts with `Name: message` (SpiderMonkey gives frames only),
//   and its frames point at the project's sources when `dohost build` embedded
//   the bundle's source map (sourcemap.js).
// - `Intl` (en-US and UTC only, intl.js) when the engine has none.
// - `Math.random()` and `crypto.getRandomValues()` at a module's top level run
//   while the component is built (the wizer snapshot), where the engine's
//   randomness traps: they get a fixed-seed generator until the first event
//   (`runStarted`), so such values are the same on every start.

import { Intl as BasicIntl } from './intl.js';
import { mapStack } from './sourcemap.js';

let started = false;
/** Called by the SDK's exports: from here on randomness is the engine's. */
export function runStarted() {
  started = true;
}

function installNavigator() {
  if (globalThis.navigator !== undefined) return;
  const navigator = Object.freeze({ userAgent: 'dohost', hardwareConcurrency: 1, language: 'en' });
  Object.defineProperty(globalThis, 'navigator', { value: navigator, configurable: true, enumerable: false, writable: false });
}

function installTextStreams() {
  if (typeof TransformStream !== 'function') return;
  if (typeof globalThis.TextEncoderStream !== 'function') {
    globalThis.TextEncoderStream = class TextEncoderStream extends TransformStream {
      constructor() {
        const encoder = new TextEncoder();
        super({ transform: (chunk, c) => c.enqueue(encoder.encode(String(chunk))) });
      }
      get encoding() {
        return 'utf-8';
      }
    };
  }
  if (typeof globalThis.TextDecoderStream !== 'function') {
    globalThis.TextDecoderStream = class TextDecoderStream extends TransformStream {
      constructor(label = 'utf-8', options = {}) {
        const decoder = new TextDecoder(label, options);
        super({
          transform: (chunk, c) => {
            const text = decoder.decode(chunk, { stream: true });
            if (text) c.enqueue(text);
          },
          flush: (c) => {
            const text = decoder.decode();
            if (text) c.enqueue(text);
          },
        });
      }
    };
  }
}

function installStackHeader() {
  const own = Object.getOwnPropertyDescriptor(Error.prototype, 'stack');
  if (!own || typeof own.get !== 'function') return;
  Object.defineProperty(Error.prototype, 'stack', {
    configurable: true,
    get() {
      const frames = own.get.call(this);
      if (typeof frames !== 'string' || !(this instanceof Error)) return frames;
      const head = String(this);
      return mapStack(frames.startsWith(head) ? frames : `${head}\n${frames}`);
    },
    set(value) {
      Object.defineProperty(this, 'stack', { value, writable: true, configurable: true, enumerable: false });
    },
  });
}

function installBuildTimeRandomness() {
  let seed = 0x2545f491;
  const next = () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return seed >>> 0;
  };
  const random = Math.random;
  Math.random = function random_() {
    return started ? random() : next() / 4294967296;
  };
  const crypto = globalThis.crypto;
  if (crypto && typeof crypto.getRandomValues === 'function') {
    const getRandomValues = crypto.getRandomValues.bind(crypto);
    crypto.getRandomValues = (array) => {
      if (started) return getRandomValues(array);
      const bytes = new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
      for (let i = 0; i < bytes.length; i++) bytes[i] = next() & 255;
      return array;
    };
  }
}

function installIntl() {
  if (globalThis.Intl !== undefined) return;
  Object.defineProperty(globalThis, 'Intl', { value: BasicIntl, configurable: true, enumerable: false, writable: true });
}

installNavigator();
installIntl();
installTextStreams();
installStackHeader();
installBuildTimeRandomness();
