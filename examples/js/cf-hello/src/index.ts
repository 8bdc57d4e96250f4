// A Worker and a Durable Object written for Cloudflare: TypeScript, the
// `cloudflare:workers` base class, SQL storage, RPC through a binding, a var
// and a text module (wrangler's default rule for .txt).
import { DurableObject } from "cloudflare:workers";
import banner from "./banner.txt";

interface Env {
  GREETER: DurableObjectNamespace<Greeter>;
  GREETING: string;
  MAX_NAME: number;
}

export class Greeter extends DurableObject<Env> {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    ctx.storage.sql.exec(
      "CREATE TABLE IF NOT EXISTS visits (name TEXT PRIMARY KEY, n INTEGER NOT NULL)",
    );
  }

  async greet(name: string): Promise<string> {
    this.ctx.storage.sql.exec(
      "INSERT INTO visits VALUES (?, 1) ON CONFLICT(name) DO UPDATE SET n = n + 1",
      name,
    );
    const { n } = this.ctx.storage.sql
      .exec("SELECT n FROM visits WHERE name = ?", name)
      .one() as { n: number };
    return `${this.env.GREETING}, ${name}! (visit ${n})`;
  }
}

export default {
  async fetch(request, env, ctx): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === "/banner") return new Response(banner);
    const name = url.searchParams.get("name") ?? "world";
    if (name.length > Number(env.MAX_NAME)) {
      return new Response(`name longer than ${env.MAX_NAME}`, { status: 400 });
    }
    const stub = env.GREETER.get(env.GREETER.idFromName(name));
    return new Response(await stub.greet(name));
  },
} satisfies ExportedHandler<Env>;
