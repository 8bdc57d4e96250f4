// `Counter` of the hello app: the Durable Objects quick start, unchanged but
// for the import. Its public methods are RPC methods (`exportDynamic`).

import { DurableObject, exportDynamic, exportObject } from '../../../guest-sdk/js/index.js';

export class Counter extends DurableObject {
  async increment(by = 1) {
    let value = (await this.ctx.storage.get('value')) ?? 0;
    value += by;
    await this.ctx.storage.put('value', value);
    return value;
  }

  async get() {
    return (await this.ctx.storage.get('value')) ?? 0;
  }
}

export const handler = exportObject(Counter);
export const dynamic = exportDynamic(Counter);
export { timerEvents } from '../../../guest-sdk/js/index.js';
