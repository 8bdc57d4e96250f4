// `ctx` (`DurableObjectState`): the object's identity, its storage, the
// WebSockets it accepts and lists, `blockConcurrencyWhile`/`waitUntil` and
// `abort`. runtime.js creates one per instance and settles it after each event.

import * as wstate from 'dohost:object/state@0.2.0';
import * as wtimers from 'dohost:object/timers@0.2.0';
import * as wws from 'dohost:object/websockets@0.2.0';
import { host } from './error.js';
import { DurableObjectStorage } from './storage.js';
import { DurableObjectId } from './stub.js';
import { clearEventTimers, parkTimers, setEventRunning, setOnParked } from './timers.js';
import {
  BIND,
  HAS_HANDLE,
  LIVE_TAG,
  ORPHANED,
  SOCKET_ID,
  liveSockets,
  setAcceptHook,
  INTERNAL,
  RELEASE,
  WebSocket,
  WebSocketRequestResponsePair,
  disposeHandle,
  eventSockets,
  knownSockets,
  socketFromHandle,
} from './websocket.js';

let warnedNoTimerEvents = false;
let keptAwake = false;

// While an `accept()`ed socket is open its listeners live in this instance:
// the host must not hibernate it.
function keepAwake() {
  const on = liveSockets.size > 0;
  if (on !== keptAwake) wtimers.keepAwake(on);
  keptAwake = on;
}

// Accepts the current request's upgrade into `target` (a new WebSocket if null).
function acceptInto(target, tags) {
  const res = host(wws.accept, tags);
  let ws;
  try {
    ws = (target ?? new WebSocket(INTERNAL))[BIND](res, res.id());
  } catch (e) {
    disposeHandle(res);
    throw e;
  }
  eventSockets.accepted = ws;
  return ws;
}

/**
 * The event ends (settled, or failed with the instance kept): its timers are
 * parked and the host asked for their wake-up; from here a new timer is parked
 * at once (timers.js). Also what keeps the object awake.
 */
export function endEvent() {
  setEventRunning(false);
  scheduleTimers();
  keepAwake();
}
setOnParked(scheduleTimers);

setAcceptHook((ws) => {
  acceptInto(ws, [LIVE_TAG]);
  liveSockets.add(ws);
});

// The event ends: its pending timers leave the engine's loop, and the host
// wakes the object (`timer-events.fire`) when the earliest is due.
function scheduleTimers() {
  const delay = parkTimers();
  if (wtimers.wakeAfter(delay ?? undefined) || delay === null) return;
  clearEventTimers();
  if (!warnedNoTimerEvents) {
    warnedNoTimerEvents = true;
    console.warn(
      "dohost: a timer was pending when the event ended and was dropped: this class does not export timerEvents (export { timerEvents } from the SDK's index.js, world dohost:object/js-object)",
    );
  }
}

/** `ctx`: the object's identity, storage and WebSockets. */
export class DurableObjectState {
  #pending = [];
  constructor() {
    this.id = new DurableObjectId(wstate.id(), wstate.name());
    /** The class name as configured in the manifest. */
    this.className = wstate.className();
    this.storage = new DurableObjectStorage();
  }
  /**
   * Runs `fn`; the current event (the constructor too) ends only after its
   * promise settles. Events never interleave in dohost, so this is only about waiting.
   */
  blockConcurrencyWhile(fn) {
    const p = Promise.resolve().then(fn);
    this.#pending.push(p);
    return p;
  }
  waitUntil(promise) {
    this.#pending.push(Promise.resolve(promise));
  }
  async _settle() {
    while (this.#pending.length) {
      const ps = this.#pending.splice(0);
      await Promise.all(ps);
    }
    endEvent();
  }
  /**
   * Accepts the WebSocket upgrade of the current request and returns its
   * `WebSocket`; the fetch handler must then return
   * `new Response(null, { status: 101 })`. `acceptWebSocket(tags)` or Cloudflare's
   * `acceptWebSocket(server, tags)` with the server side of a `WebSocketPair`.
   * At most 10 tags of ≤ 256 chars. Throws DohostError when the request does not
   * ask for an upgrade, on a second accept, or above limits.max_sockets_per_object.
   */
  acceptWebSocket(wsOrTags, maybeTags) {
    let target = null;
    let tags = wsOrTags;
    if (wsOrTags instanceof WebSocket) {
      if (wsOrTags[SOCKET_ID] !== null || wsOrTags.readyState !== WebSocket.CONNECTING) {
        throw new TypeError('this WebSocket was already accepted');
      }
      target = wsOrTags;
      tags = maybeTags;
    }
    tags = tags ?? [];
    if (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string')) {
      throw new TypeError('acceptWebSocket: tags must be an array of strings');
    }
    if (tags.includes(LIVE_TAG)) throw new TypeError(`acceptWebSocket: the tag ${LIVE_TAG} is dohost's`);
    return acceptInto(target, tags);
  }
  /**
   * The open hibernatable sockets of this object (those with `tag`, if given),
   * oldest first; not those accepted with `ws.accept()`, as on Cloudflare.
   */
  getWebSockets(tag) {
    if (tag !== undefined && tag !== null && typeof tag !== 'string') throw new TypeError('getWebSockets: tag must be a string');
    const list = host(wws.getWebSockets, tag ?? undefined);
    const out = [];
    let failure = null;
    for (const res of list) {
      if (failure !== null) {
        disposeHandle(res);
        continue;
      }
      try {
        out.push(socketFromHandle(res));
      } catch (e) {
        failure = e;
      }
    }
    if (failure !== null) throw failure;
    const hibernatable = out.filter((ws) => !liveSockets.has(ws) && !ws[ORPHANED]);
    if (tag === undefined || tag === null) {
      // Every open socket is listed: a known socket that is not has closed.
      const open = new Set(out);
      for (const ws of knownSockets.values()) {
        if (!open.has(ws) && ws !== eventSockets.current && ws[HAS_HANDLE]) ws[RELEASE]();
      }
    }
    return hibernatable;
  }
  /** The tags of a socket (`ws.tags`). */
  getTags(ws) {
    return ws.tags;
  }
  /**
   * Sets the request/response pair the host answers by itself, without waking
   * the object (`new WebSocketRequestResponsePair('ping', 'pong')`); no argument
   * (or null) clears it. The pair lives in the host and survives hibernation.
   */
  setWebSocketAutoResponse(pair) {
    if (pair === undefined || pair === null) {
      host(wws.setAutoResponse, undefined);
      return;
    }
    const { request, response } = pair;
    if (typeof request !== 'string' || typeof response !== 'string') {
      throw new TypeError('setWebSocketAutoResponse expects a WebSocketRequestResponsePair');
    }
    host(wws.setAutoResponse, { request, response });
  }
  /** The current auto-response pair, or null. */
  getWebSocketAutoResponse() {
    const p = wws.getAutoResponse();
    return p === undefined ? null : new WebSocketRequestResponsePair(p.request, p.response);
  }
  /** When the host last auto-responded to `ws` (a Date), or null. */
  getWebSocketAutoResponseTimestamp(ws) {
    const t = ws.autoResponseTimestamp;
    return t === null ? null : new Date(t);
  }
  /** Rolls back the current event and resets the object (a trap). Never returns. */
  abort(reason = 'aborted') {
    wstate.abort(String(reason));
    throw new Error('unreachable: abort returned');
  }
}
