// Stack frames mapped to the project's sources: `dohost build` appends the
// bundle's source map (its `sources` and `mappings`) to the bundle, under
// `Symbol.for('dohost.sourcemap')`, and globals.js rewrites each frame of
// `err.stack` (`fn@bundle.js:line:col`) to the original file, line and column
// (`fn@src/index.ts:12:5`). The mappings are decoded at the first stack read.

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const DIGIT = new Map([...B64].map((c, i) => [c, i]));

// One line's segments: [generated column, source index, original line, original column].
function decodeMappings(mappings) {
  const lines = [];
  let source = 0;
  let line = 0;
  let column = 0;
  for (const text of mappings.split(';')) {
    const segments = [];
    let generated = 0;
    for (const segment of text.split(',')) {
      if (!segment) continue;
      const values = [];
      let value = 0;
      let shift = 0;
      for (const c of segment) {
        const digit = DIGIT.get(c);
        value += (digit & 31) << shift;
        if (digit & 32) {
          shift += 5;
          continue;
        }
        values.push(value & 1 ? -(value >>> 1) : value >>> 1);
        value = 0;
        shift = 0;
      }
      generated += values[0];
      if (values.length >= 4) {
        source += values[1];
        line += values[2];
        column += values[3];
        segments.push([generated, source, line, column]);
      }
    }
    lines.push(segments);
  }
  return lines;
}

let decoded = null;

/** `line`/`column` (1-based, as in stack frames) of the bundle → [source, line, column], or null. */
function original(map, line, column) {
  decoded ??= decodeMappings(map.mappings);
  const segments = decoded[line - 1];
  if (!segments || segments.length === 0) return null;
  let best = null;
  for (const s of segments) {
    if (s[0] > column - 1) break;
    best = s;
  }
  best ??= segments[0];
  return [map.sources[best[1]], best[2] + 1, best[3] + 1];
}

/** Rewrites the frames of a stack that point into the bundle. */
export function mapStack(stack) {
  const map = globalThis[Symbol.for('dohost.sourcemap')];
  if (!map || typeof stack !== 'string') return stack;
  return stack.replace(/([^\s@]*\.js):(\d+):(\d+)/g, (whole, file, line, column) => {
    if (file !== map.file && !file.endsWith(`/${map.file}`)) return whole;
    const found = original(map, Number(line), Number(column));
    return found ? `${found[0]}:${found[1]}:${found[2]}` : whole;
  });
}
