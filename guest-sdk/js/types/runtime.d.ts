// dohost's runtime types for Durable Objects projects written for Cloudflare:
// what a class and a Worker may use on dohost, in the shape of Cloudflare's
// own types (@cloudflare/workers-types, `wrangler types`), so that `tsc
// --noEmit` checks a project against what dohost provides. An API dohost
// lacks is not declared here: using it is a type error, not a surprise at run
// time. Use with the TypeScript libs "es2022" and "webworker" (Request,
// Response, URL, streams, crypto). `dohost types` writes this file, with the
// project's `Env`, into worker-configuration.d.ts.

type DurableObjectJsonValue = string | number | boolean | null | DurableObjectJsonValue[] | { [key: string]: DurableObjectJsonValue };

interface DurableObjectId {
  toString(): string;
  equals(other: DurableObjectId): boolean;
  readonly name?: string;
}

/** A stub: `fetch` and the class's public methods (JSON arguments and results on dohost). */
type DurableObjectStub<T = undefined> = {
  readonly id: DurableObjectId;
  readonly name?: string;
  fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;
} & (T extends object
  ? {
      [K in keyof T as K extends 'fetch' | 'alarm' | 'webSocketMessage' | 'webSocketClose' | 'webSocketError' | 'constructor' | 'ctx' | 'env'
        ? never
        : T[K] extends (...args: any[]) => any
          ? K
          : never]: T[K] extends (...args: infer A) => infer R ? (...args: A) => Promise<Awaited<R>> : never;
    }
  : {});

interface DurableObjectNamespace<T = undefined> {
  idFromName(name: string): DurableObjectId;
  idFromString(id: string): DurableObjectId;
  newUniqueId(): DurableObjectId;
  get(id: DurableObjectId): DurableObjectStub<T>;
  getByName(name: string): DurableObjectStub<T>;
}

type SqlStorageValue = ArrayBuffer | string | number | null;

interface SqlStorageCursor<T extends Record<string, SqlStorageValue> = Record<string, SqlStorageValue>> extends Iterable<T> {
  next(): { done?: false; value: T } | { done: true; value?: never };
  toArray(): T[];
  one(): T;
  raw<U extends SqlStorageValue[] = SqlStorageValue[]>(): IterableIterator<U>;
  readonly columnNames: string[];
  readonly rowsRead: number;
  readonly rowsWritten: number;
}

interface SqlStorage {
  exec<T extends Record<string, SqlStorageValue> = Record<string, SqlStorageValue>>(query: string, ...bindings: any[]): SqlStorageCursor<T>;
  readonly databaseSize: number;
}

interface DurableObjectListOptions {
  start?: string;
  startAfter?: string;
  end?: string;
  prefix?: string;
  reverse?: boolean;
  limit?: number;
}

interface DurableObjectKvStorage {
  get<T = unknown>(key: string): T | undefined;
  get<T = unknown>(keys: string[]): Map<string, T>;
  put<T>(key: string, value: T): void;
  put<T>(entries: Record<string, T>): void;
  delete(key: string): boolean;
  delete(keys: string[]): number;
  list<T = unknown>(options?: DurableObjectListOptions): Map<string, T>;
}

/** `ctx.storage`: synchronous on dohost (`await` works too). */
interface DurableObjectStorage extends DurableObjectKvStorage {
  readonly sql: SqlStorage;
  readonly kv: DurableObjectKvStorage;
  deleteAll(): void;
  getAlarm(): number | null;
  setAlarm(scheduledTime: number | Date): void;
  deleteAlarm(): void;
  transactionSync<T>(closure: () => T): T;
  transaction<T>(closure: (txn: { rollback(): void }) => Promise<T>): Promise<T>;
  sync(): Promise<void>;
}

declare class WebSocketRequestResponsePair {
  constructor(request: string, response: string);
  readonly request: string;
  readonly response: string;
}

/** The server side of a socket (the host owns the connection). */
interface WebSocket {
  accept(): void;
  serializeAttachment(value: any): void;
  deserializeAttachment(): any;
  readonly tags: string[];
  readonly autoResponseTimestamp: number | null;
}

declare var WebSocketPair: {
  new (): { 0: WebSocket; 1: WebSocket };
};

interface DurableObjectState {
  readonly id: DurableObjectId;
  readonly className: string;
  readonly storage: DurableObjectStorage;
  blockConcurrencyWhile<T>(callback: () => Promise<T> | T): Promise<T>;
  waitUntil(promise: Promise<any>): void;
  acceptWebSocket(ws: WebSocket, tags?: string[]): void;
  getWebSockets(tag?: string): WebSocket[];
  getTags(ws: WebSocket): string[];
  setWebSocketAutoResponse(pair?: WebSocketRequestResponsePair): void;
  getWebSocketAutoResponse(): WebSocketRequestResponsePair | null;
  getWebSocketAutoResponseTimestamp(ws: WebSocket): Date | null;
  abort(reason?: string): never;
}

interface AlarmInvocationInfo {
  readonly retryCount: number;
  readonly isRetry: boolean;
}

interface ExecutionContext {
  waitUntil(promise: Promise<any>): void;
  passThroughOnException(): void;
}

/** The Worker: `export default { fetch(request, env, ctx) { … } } satisfies ExportedHandler<Env>`. */
interface ExportedHandler<Env = unknown> {
  fetch?: (request: Request, env: Env, ctx: ExecutionContext) => Response | Promise<Response>;
}

/** The response to a WebSocket upgrade: `new Response(null, { status: 101, webSocket: client })`. */
interface ResponseInit {
  webSocket?: WebSocket | null;
}

interface Request {
  /** Not set on dohost. */
  readonly cf?: undefined;
}

declare module 'cloudflare:workers' {
  export abstract class DurableObject<Env = unknown> {
    protected ctx: DurableObjectState;
    protected env: Env;
    constructor(ctx: DurableObjectState, env: Env);
    fetch?(request: Request): Response | Promise<Response>;
    alarm?(alarmInfo?: AlarmInvocationInfo): void | Promise<void>;
    webSocketMessage?(ws: WebSocket, message: string | ArrayBuffer): void | Promise<void>;
    webSocketClose?(ws: WebSocket, code: number, reason: string, wasClean: boolean): void | Promise<void>;
    webSocketError?(ws: WebSocket, error: unknown): void | Promise<void>;
  }
  export abstract class WorkerEntrypoint<Env = unknown> {
    protected ctx: ExecutionContext;
    protected env: Env;
    constructor(ctx: ExecutionContext, env: Env);
    fetch?(request: Request): Response | Promise<Response>;
  }
  export abstract class RpcTarget {}
  export const WebSocketPair: { new (): { 0: WebSocket; 1: WebSocket } };
}

// wrangler's default module rules.
declare module '*.txt' {
  const text: string;
  export default text;
}
declare module '*.html' {
  const text: string;
  export default text;
}
declare module '*.sql' {
  const text: string;
  export default text;
}
declare module '*.bin' {
  const data: ArrayBuffer;
  export default data;
}
