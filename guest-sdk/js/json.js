// JSON with exact 64-bit integers, for RPC arguments and results and WebSocket
// attachments: BigInts are written as integer literals, and integer literals
// beyond 2^53 are read back as BigInts. Imports nothing of the host.

export function stringifyJson(value) {
  const marks = [];
  const text = JSON.stringify(value, (_, v) => {
    if (typeof v !== 'bigint') return v;
    marks.push(v.toString());
    return `\u0000bigint${marks.length - 1}\u0000`;
  });
  return text.replace(/"\\u0000bigint(\d+)\\u0000"/g, (_, i) => marks[Number(i)]);
}

export function parseJson(text) {
  const big = [];
  const marked = text.replace(/("(?:[^"\\]|\\.)*")|(?<![\d.eE+-])(-?\d{16,})(?![.eE\d])/g, (m, str, int) => {
    if (str !== undefined) return str;
    const n = BigInt(int);
    if (n >= -9007199254740991n && n <= 9007199254740991n) return int;
    big.push(n);
    return `{"\\u0000bigint":${big.length - 1}}`;
  });
  if (big.length === 0) return JSON.parse(text);
  return JSON.parse(marked, (_, v) =>
    v && typeof v === 'object' && !Array.isArray(v) && Object.hasOwn(v, '\u0000bigint') ? big[v['\u0000bigint']] : v,
  );
}
