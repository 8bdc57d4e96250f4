// Timers: setTimeout/setInterval wrapped so that the timers an event leaves
// pending are cleared when it ends (`clearEventTimers`, called by state.js).
// Patches the globals when this module is loaded (at build time); calls no host import.

// Each export call runs the engine's event loop only until its own promise
// settles, so a timer still pending when an event ends would fire inside a
// later event — its callback writing into that event's transaction. Until
// timers get events of their own, every timer still pending when an event
// ends is cleared (README: "Timers").

const pendingTimers = new Set();
const hostSetTimeout = globalThis.setTimeout;
const hostClearTimeout = globalThis.clearTimeout;
const hostSetInterval = globalThis.setInterval;
const hostClearInterval = globalThis.clearInterval;

globalThis.setTimeout = function setTimeout(callback, delay, ...args) {
  const id = hostSetTimeout(
    (...a) => {
      pendingTimers.delete(id);
      if (typeof callback === 'function') callback(...a);
    },
    delay,
    ...args,
  );
  pendingTimers.add(id);
  return id;
};
globalThis.clearTimeout = function clearTimeout(id) {
  pendingTimers.delete(id);
  hostClearTimeout(id);
};
globalThis.setInterval = function setInterval(callback, delay, ...args) {
  const id = hostSetInterval(callback, delay, ...args);
  pendingTimers.add(id);
  return id;
};
globalThis.clearInterval = function clearInterval(id) {
  pendingTimers.delete(id);
  hostClearInterval(id);
};

/** Clears the timers the event left pending (called when every event ends). */
export function clearEventTimers() {
  for (const id of pendingTimers) {
    hostClearTimeout(id);
    hostClearInterval(id);
  }
  pendingTimers.clear();
}
