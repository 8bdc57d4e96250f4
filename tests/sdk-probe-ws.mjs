// The WebSocket half of tests/sdk-probes.sh: drives the sockets of the probe
// classes (tests/fixtures/sdk-probe-{js,py}) on a live dohost and checks the JS
// and Python SDK WebSocket APIs (accept/tags/attachments/auto-response/close/
// error handlers, binary frames, handle lifetimes).
//
//   node --experimental-websocket tests/sdk-probe-ws.mjs http://127.0.0.1:PORT JsSdkProbe|PySdkProbe
//
// The host must run with `[limits] max_ws_message_bytes = 65536`.
import { Client, httpClient, rawUpgrade, reporter } from './lib/ws.mjs';

const [base, cls] = process.argv.slice(2);
const js = cls.startsWith('Js');
const t = reporter();
const { ok, eq, match, eventually } = t;
const { get } = httpClient(base);
const O = `/obj/${cls}/ws-${process.pid}`;
const wsUrl = (path) => `${base.replace(/^http/, 'ws')}${path}`;

async function main() {
  console.log(`== ${cls} WebSockets`);
  const ann = await Client.open(wsUrl(`${O}/ws?tags=red,blue&name=ann`));
  eq('accept: welcome sent from fetch', await ann.next(), 'welcome');
  const bob = await Client.open(wsUrl(`${O}/ws?tags=green&name=bob`));
  eq('second socket', await bob.next(), 'welcome');

  // in-guest assertions (tags, attachments, auto-response pair, errors, 100,500 handles)
  ann.send('selftest');
  const st = JSON.parse(await ann.next(60000));
  ok(`in-event selftest (${st.passed} passed)`, st.failed.length === 0, JSON.stringify(st.failed));
  eq('tags', (ann.send('tags'), await ann.next()), 'red,blue');
  eq('attachment', (ann.send('attachment'), JSON.parse(await ann.next())), { joined: 'ann' });
  eq('/sockets (tags and attachments)', (await get(`${O}/sockets`)).body, 'red+blue:{"joined":"ann"}\ngreen:{"joined":"bob"}');
  eq('/sockets?tag=green', (await get(`${O}/sockets?tag=green`)).body, 'green:{"joined":"bob"}');

  // binary frames: the handler gets an ArrayBuffer (JS) / bytes (Python) and sends
  // Uint8Array, ArrayBuffer, DataView / bytes, bytearray, memoryview back
  ann.send(new Uint8Array([1, 2, 3]));
  eq('binary message type', await ann.next(), js ? 'binary ArrayBuffer 3' : 'binary bytes 3');
  eq('send(reversed bytes)', await ann.nextBytes(), [3, 2, 1]);
  eq(js ? 'send(ArrayBuffer)' : 'send(bytearray)', await ann.nextBytes(), [1, 2, 3]);
  eq(js ? 'send(DataView)' : 'send(memoryview)', await ann.nextBytes(), [1, 2, 3]);

  // auto-response and its timestamp
  eq('stamp before any auto-response', (ann.send('stamp'), await ann.next()), 'null');
  const before = Date.now();
  eq('marco → polo (host)', (ann.send('marco'), await ann.next()), 'polo');
  const stamp = (ann.send('stamp'), await ann.next());
  ok('getWebSocketAutoResponseTimestamp', Math.abs(Number(stamp) - before) < 5000, stamp);

  // broadcast by tag
  ann.send('broadcast red');
  eq('broadcast to tag red reaches ann', await ann.next(), 'bc:red');
  eq('… and not bob', await bob.maybeNext(300), null);
  bob.send('broadcast');
  eq('broadcast to all: ann', await ann.next(), 'bc:');
  eq('broadcast to all: bob', await bob.next(), 'bc:');

  // an exception in a handler is err(…), not a trap: the instance lives on
  eq('count', (ann.send('count'), await ann.next()), 'count 1');
  ann.send('throw');
  eq('after an exception the same instance answers', (ann.send('count'), await ann.next()), 'count 102');

  // oversized outgoing message → DohostError; oversized incoming → webSocketError + 1009
  match('send above max_ws_message_bytes', (ann.send('big 70000'), await ann.next()), /DohostError: message too large/);

  // the guest closes a socket: close code reaches the client; send afterwards is an error
  bob.send('close-me');
  const bobClosed = await bob.closed;
  eq('guest close(1011, "bye")', [bobClosed.code, bobClosed.reason], [1011, 'bye']);
  match('send after close() in the same event', (await get(`${O}/get?key=send_after_close`)).body, js ? /^readyState 2 DohostError: socket \d+ is closed$/ : /^DohostError: socket \d+ is closed$/);
  eq('ann hears bob left (close handler)', await ann.next(), 'left:green');
  match(
    'webSocketClose(ws, code, reason, wasClean): tags and attachment readable',
    (await get(`${O}/get?key=last_close`)).body,
    js ? /^1011:bye:true:green:\{"joined":"bob"\}:3:same$/ : /^1011:bye:true:green:\{"joined":"bob"\}$/,
  );
  eq('send in the close handler → DohostError', (await get(`${O}/get?key=send_in_close`)).body, 'DohostError');

  // a client close
  const cid = await Client.open(wsUrl(`${O}/ws?tags=cyan&name=cid`));
  eq('cid welcome', await cid.next(), 'welcome');
  cid.close(4321, 'client says bye');
  eq('ann hears cid left', await ann.next(), 'left:cyan');
  match('client close(4321)', (await get(`${O}/get?key=last_close`)).body, /^4321:client says bye:true:cyan:\{"joined":"cid"\}/);

  // a dropped connection (no close frame)
  eq('raw upgrade', (await rawUpgrade(`${base}${O}/ws?tags=gone&name=dee`)).status, 101);
  eq('ann hears dee left', await ann.next(), 'left:gone');
  match('dropped → 1006, not clean', (await get(`${O}/get?key=last_close`)).body, /^1006::false:gone:\{"joined":"dee"\}/);

  // an oversized incoming message → webSocketError, then close 1009
  const eve = await Client.open(wsUrl(`${O}/ws?tags=big&name=eve`));
  eq('eve welcome', await eve.next(), 'welcome');
  eve.send('x'.repeat(70000));
  eq('oversized message: closed with 1009', (await eve.closed).code, 1009);
  await eventually('webSocketError ran', async () => (await get(`${O}/get?key=last_error`)).body !== 'none');
  const lastError = (await get(`${O}/get?key=last_error`)).body;
  match('webSocketError(ws, error): an Error / WebSocketError with the message', lastError, js ? /^true:message too large: / : /^True:message too large: /);
  // The error event carries the socket's last state (it closes right after).
  ok('webSocketError: tags and attachment readable', /:big:\{"joined":"eve"\}$/.test(lastError));
  eq('ann hears eve left', await ann.next(), 'left:big');

  // accepted but not answered with 101: the host drops it
  const refused = await rawUpgrade(`${base}${O}/ws-refuse`);
  eq('accept then 200 → the client gets 200', [refused.status, refused.body], [200, 'not today']);
  eq('the refused socket is not listed', (await get(`${O}/sockets`)).body, 'red+blue:{"joined":"ann"}');
  if (js) eq('the refused wrapper is CLOSED (handle dropped)', (await get(`${O}/refused-state`)).body, '3');

  // Cloudflare's WebSocketPair (JS)
  if (js) {
    const pair = await Client.open(wsUrl(`${O}/ws-pair`));
    eq('WebSocketPair + acceptWebSocket(server)', await pair.next(), 'welcome');
    eq('/sockets?tag=pair', (await get(`${O}/sockets?tag=pair`)).body, 'pair:{"joined":"pair"}');
    pair.close(1000);
    eq('ann hears pair left', await ann.next(), 'left:pair');
  }

  // not an upgrade: the SDK throws DohostError (fixture answers 501)
  match('acceptWebSocket without an upgrade', (await get(`${O}/ws`)).body, /^DohostError: accept is only possible/);

  // handle lifetimes in a fetch (ann is open): the SDK stays under the cap
  let r = await get(`${O}/handles?mode=sdk&n=101000`, { method: 'POST' });
  eq('101,000 × getWebSockets() through the SDK', [r.status, r.body], [200, 'ok 101000']);
  if (js) {
    r = await get(`${O}/handles?mode=raw-used&n=101000`, { method: 'POST' });
    ok(
      // Whichever limit comes first: 100,000 handles, or the instance's memory
      // (the wrappers that keep them cost ~1.3 KB each, close to 128 MiB).
      'raw componentize-js handles that were used are never dropped → the object fails at the handle cap or the memory limit (why the SDK disposes)',
      r.status === 500 &&
        /cannot hand out another socket handle|handle limit exceeded|no free keys|exceeded the memory limit/.test(r.body),
      `${r.status} ${r.body.slice(0, 200)}`,
    );
    r = await get(`${O}/handles?mode=raw-unused&n=101000`, { method: 'POST' });
    console.log(`info  raw handles never used, left to the FinalizationRegistry (yielding every 1,000): ${r.status} ${r.body.replace(/^.*trapped: /, 'trapped: ').slice(0, 120)}`);
    const again = await Client.open(wsUrl(`${O}/ws?tags=again&name=fin`));
    eq('the object serves sockets after the trap', await again.next(), 'welcome');
    again.close(1000);
    await ann.next(); // left:again
  } else {
    r = await get(`${O}/handles?mode=raw&n=101000`, { method: 'POST' });
    eq('101,000 × raw get_web_sockets() (freed by refcount)', [r.status, r.body], [200, 'ok 101000']);
  }

  // clearing the auto-response
  eq('setWebSocketAutoResponse() clears', (ann.send('auto-clear'), await ann.next()), js ? 'null' : 'None');
  ann.send('marco');
  eq('marco now reaches the handler', await ann.next(), 'unknown command marco');

  ann.close(1000, 'done');
  await ann.closed;
  await eventually('ann close handled', async () => /^1000:/.test((await get(`${O}/get?key=last_close`)).body));
  match('ann close', (await get(`${O}/get?key=last_close`)).body, /^1000:done:true:red\+blue:\{"joined":"ann"\}/);
  console.log(`${t.passed} passed, ${t.failed} failed`);
  process.exit(t.failed ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  console.log(`${t.passed} passed, ${t.failed + 1} failed`);
  process.exit(1);
});
