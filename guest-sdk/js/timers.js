// Timers: setTimeout/setInterval as on Cloudflare, where a timer's callback
// runs on its own, not inside whatever event happens to be running.
// Patches the globals when this module is loaded (at build time); calls no host import.
//
// Each export call runs the engine's event loop only until its own promise
// settles. So while an event runs, its timers are on that loop (an event that
// awaits a timer sees it fire); when it ends, `parkTimers` takes every pending
// timer off the loop and keeps it here with its due time, and the object asks
// the host to wake it when the earliest is due (state.js). The host's
// `timer-events.fire` event then runs the due callbacks (`runDueTimers`).
// A parked timer never fires inside a later event, which would write into that
// event's transaction. The entry worker clears them instead (`clearEventTimers`).

const hostSetTimeout = globalThis.setTimeout;
const hostClearTimeout = globalThis.clearTimeout;
// Browsers treat longer delays as 0; clamping keeps a long timer long.
const MAX_DELAY = 2 ** 31 - 1;

/** id → { callback, args, due (epoch ms), period (ms, or null), engineId (or null) } */
const timers = new Map();
let lastId = 0;
// An event is running (from its export's start until it settles): a new timer
// goes on the engine's loop. Outside one — a promise chain no event awaits that
// goes on after its event settled — it is parked at once, and `onParked` asks
// the host for the wake-up, so it never fires inside a later event.
let eventRunning = false;
let onParked = () => {};

/** The runtime marks the start and the end of each event (state.js, runtime.js). */
export function setEventRunning(running) {
  eventRunning = running;
}

/** What to call when a timer is parked outside an event (state.js: update the wake-up). */
export function setOnParked(hook) {
  onParked = hook;
}

function delayOf(delay) {
  const ms = Number(delay);
  return Number.isFinite(ms) && ms > 0 ? Math.min(Math.floor(ms), MAX_DELAY) : 0;
}

// Puts a timer on the engine's event loop (it then fires inside the running event).
function arm(id, timer) {
  timer.engineId = hostSetTimeout(() => {
    timer.engineId = null;
    if (timers.get(id) !== timer) return;
    if (next(id, timer)) arm(id, timer);
    timer.callback(...timer.args);
  }, Math.max(0, timer.due - Date.now()));
}

// Advances a timer that fires now: an interval's next due time (true), or
// gone for a timeout (false).
function next(id, timer) {
  if (timer.period === null) {
    timers.delete(id);
    return false;
  }
  timer.due = Math.max(timer.due + timer.period, Date.now());
  return true;
}

function add(callback, delay, args, repeat) {
  const id = ++lastId;
  const ms = delayOf(delay);
  // A callback that is not a function (a string, in browsers) does nothing.
  const timer = { callback: typeof callback === 'function' ? callback : () => {}, args, due: Date.now() + ms, period: repeat ? Math.max(ms, 1) : null, engineId: null };
  timers.set(id, timer);
  if (eventRunning) arm(id, timer);
  else onParked();
  return id;
}

function clear(id) {
  const timer = timers.get(id);
  if (timer === undefined) return;
  if (timer.engineId !== null) hostClearTimeout(timer.engineId);
  timers.delete(id);
}

globalThis.setTimeout = function setTimeout(callback, delay, ...args) {
  return add(callback, delay, args, false);
};
globalThis.setInterval = function setInterval(callback, delay, ...args) {
  return add(callback, delay, args, true);
};
globalThis.clearTimeout = function clearTimeout(id) {
  clear(id);
};
globalThis.clearInterval = function clearInterval(id) {
  clear(id);
};

/**
 * Takes every pending timer off the engine's loop (the event is ending) and
 * returns the milliseconds until the earliest is due, or null if none is pending.
 */
export function parkTimers() {
  let earliest = null;
  for (const timer of timers.values()) {
    if (timer.engineId !== null) {
      hostClearTimeout(timer.engineId);
      timer.engineId = null;
    }
    if (earliest === null || timer.due < earliest) earliest = timer.due;
  }
  return earliest === null ? null : Math.min(Math.max(0, earliest - Date.now()), MAX_DELAY);
}

/** Drops every pending timer (the entry worker, after each request). */
export function clearEventTimers() {
  parkTimers();
  timers.clear();
}

/**
 * Runs the callbacks of the parked timers that are due, earliest first (the
 * `timer-events.fire` event). Every one runs even if another throws; the first
 * exception is returned.
 */
export function runDueTimers() {
  const now = Date.now();
  const due = [...timers].filter(([, t]) => t.engineId === null && t.due <= now).sort(([a, ta], [b, tb]) => ta.due - tb.due || a - b);
  let failure = null;
  for (const [id, timer] of due) {
    if (timers.get(id) !== timer) continue; // cleared by an earlier callback
    next(id, timer);
    try {
      timer.callback(...timer.args);
    } catch (e) {
      failure ??= e;
    }
  }
  return failure;
}
