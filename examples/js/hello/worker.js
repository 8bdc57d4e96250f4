// The hello app's Worker (its entry): `GET /` answers `Count: N`, counting
// 1, 2, 3… across requests in the `Counter` named "global" (bound as COUNTER).

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname !== '/') return new Response('not found', { status: 404 });
    const stub = env.COUNTER.getByName('global');
    return new Response(`Count: ${await stub.increment()}`);
  },
};
