// Entry worker: routes HTTP requests to the Durable Object classes with the same URL
// contract as dohost (host/src/server.rs):
//   ANY  /obj/<Class>/<name>/<path...>      -> fetch of idFromName(<name>), path rewritten to /<path...>
//   ANY  /obj/<Class>/id/<hex>/<path...>    -> fetch of idFromString(<hex>)
//   POST /rpc/<Class>/<name>/<method>       -> stub.<method>(...JSON array body) -> JSON result
//   GET  /_dohost/health                    -> "ok\n" (same readiness probe as dohost)
//   GET  /_workerd/id/<Class>/<name>        -> hex id of idFromName(<name>) (workerd-only helper)
// The query string is kept. Errors are JSON {"error": "..."} like dohost's front end.

export { Counter } from "./counter.js";
export { ChatRoom } from "./chatroom.js";
export { Batcher } from "./batcher.js";

const CLASSES = { Counter: "COUNTER", ChatRoom: "CHATROOM", Batcher: "BATCHER" };
// RPC methods callable through /rpc/<Class>/<name>/<method>.
const RPC_METHODS = { Counter: ["increment", "get"] };

function error(status, message) {
  return Response.json({ error: message }, { status });
}

// Like Rust's str::splitn(n, '/').
function splitn(s, n) {
  const out = [];
  let rest = s;
  while (out.length < n - 1) {
    const i = rest.indexOf("/");
    if (i < 0) break;
    out.push(rest.slice(0, i));
    rest = rest.slice(i + 1);
  }
  out.push(rest);
  return out;
}

function namespace(env, className) {
  const binding = Object.hasOwn(CLASSES, className) ? CLASSES[className] : null;
  return binding ? env[binding] : null;
}

function unknownClass(className) {
  return error(404, `unknown class ${JSON.stringify(className)}; known classes: ${Object.keys(CLASSES).join(", ")}`);
}

function decodeName(raw) {
  let name;
  try {
    name = decodeURIComponent(raw);
  } catch {
    return { err: error(400, `bad object name: invalid percent-escape in ${JSON.stringify(raw)}`) };
  }
  if (name === "") return { err: error(400, "empty object name: use /obj/<class>/<name>/<path>") };
  return { name };
}

async function objectRoute(request, env, url, rest) {
  // rest = [class, name, path...] or [class, "id", hex/path...]
  if (rest.length < 2) {
    return error(404, "missing object: use /obj/<class>/<name>/<path> or /obj/<class>/id/<hex>/<path>");
  }
  const [className, target, tail] = rest;
  const ns = namespace(env, className);
  if (!ns) return unknownClass(className);
  let id, path;
  if (target === "id") {
    const t = tail ?? "";
    const slash = t.indexOf("/");
    const hex = slash < 0 ? t : t.slice(0, slash);
    path = slash < 0 ? "" : t.slice(slash + 1);
    try {
      id = ns.idFromString(hex);
    } catch (e) {
      return error(400, `invalid object id ${JSON.stringify(hex)}: ${e.message}`);
    }
  } else {
    const { name, err } = decodeName(target);
    if (err) return err;
    id = ns.idFromName(name);
    path = tail ?? "";
  }
  const stub = ns.get(id);
  // Same method, headers and body (and WebSocket upgrade), new path, same query string.
  return stub.fetch(new Request(`http://object/${path}${url.search}`, request));
}

async function rpcRoute(request, env, rest) {
  // rest = [class, name, method]
  if (rest.length !== 3) return error(404, "use POST /rpc/<class>/<name>/<method> with a JSON array of arguments");
  const [className, rawName, method] = rest;
  const ns = namespace(env, className);
  if (!ns) return unknownClass(className);
  const allowed = RPC_METHODS[className] ?? [];
  if (!allowed.includes(method)) {
    return error(404, `class ${className} has no RPC method ${JSON.stringify(method)}; methods: ${allowed.join(", ")}`);
  }
  if (request.method !== "POST") return error(405, "use POST");
  const { name, err } = decodeName(rawName);
  if (err) return err;
  let args = [];
  const body = new TextDecoder().decode(await request.arrayBuffer());
  if (body.trim() !== "") {
    try {
      args = JSON.parse(body);
    } catch (e) {
      return error(400, `request body is not JSON: ${e.message}`);
    }
    if (!Array.isArray(args)) return error(400, "request body must be a JSON array of arguments");
  }
  const stub = ns.get(ns.idFromName(name));
  try {
    const result = await stub[method](...args);
    return Response.json(result ?? null);
  } catch (e) {
    const status = e instanceof TypeError || e instanceof RangeError ? 400 : 500;
    return error(status, `${e.name}: ${e.message}`);
  }
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const segs = splitn(url.pathname.replace(/^\/+/, ""), 4);
    switch (segs[0]) {
      case "obj":
        return objectRoute(request, env, url, segs.slice(1));
      case "rpc":
        return rpcRoute(request, env, segs.slice(1));
      case "_dohost":
        if (segs.length === 2 && segs[1] === "health") {
          return new Response("ok\n", { headers: { "content-type": "text/plain; charset=utf-8" } });
        }
        break;
      case "_workerd":
        if (segs.length === 4 && segs[1] === "id") {
          const ns = namespace(env, segs[2]);
          if (!ns) return unknownClass(segs[2]);
          const { name, err } = decodeName(segs[3]);
          if (err) return err;
          return new Response(ns.idFromName(name).toString(), { headers: { "content-type": "text/plain; charset=utf-8" } });
        }
        break;
    }
    return error(404, `no route for ${url.pathname}; use /obj/<class>/<name>/<path>, /obj/<class>/id/<hex>/<path>, /rpc/<class>/<name>/<method> or /_dohost/health`);
  },
};
