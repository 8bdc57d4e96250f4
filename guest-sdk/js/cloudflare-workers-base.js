// What both `cloudflare:workers` modules (objects' and the entry's) export alike.

/** Cloudflare's base of a named entrypoint (`class X extends WorkerEntrypoint`). */
export class WorkerEntrypoint {
  constructor(ctx, env) {
    this.ctx = ctx;
    this.env = env;
  }
}

/** Marks a class whose instances may be passed by reference over RPC. */
export class RpcTarget {}
