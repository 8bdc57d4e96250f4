// `RateLimiter` of the chat app: one object per client IP (the entry calls
// `env.LIMITERS.getByName(ip).check()`). A client may connect `RATE_LIMIT`
// times a minute (a var of the manifest), in a burst or spread out: every
// accepted request moves the limiter's clock 60 s / RATE_LIMIT ahead, and a
// request that would move it more than a minute ahead of now is refused.

import { DurableObject, exportDynamic, exportObject } from '../../../guest-sdk/js/index.js';

const WINDOW_MS = 60_000;

export class RateLimiter extends DurableObject {
  /** 0 if the client may go on, else the milliseconds until it may. */
  async check() {
    const limit = Number.parseInt(this.env.RATE_LIMIT ?? '10', 10);
    if (!(limit > 0)) throw new RangeError(`RATE_LIMIT must be a positive integer, got ${this.env.RATE_LIMIT}`);
    const now = Date.now();
    const next = Math.max(now, (await this.ctx.storage.get('next')) ?? 0) + WINDOW_MS / limit;
    if (next - now > WINDOW_MS) return Math.ceil(next - now - WINDOW_MS);
    await this.ctx.storage.put('next', next);
    return 0;
  }
}

export const handler = exportObject(RateLimiter);
export const dynamic = exportDynamic(RateLimiter);
export { timerEvents } from '../../../guest-sdk/js/index.js';
