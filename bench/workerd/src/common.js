export const TEXT = { "content-type": "text/plain; charset=utf-8" };

// dohost's Response::error: plain text body with the status.
export function textError(status, message) {
  return new Response(message, { status, headers: TEXT });
}

export function text(body) {
  return new Response(String(body), { headers: TEXT });
}

// Parses an optional integer query parameter the way Rust's i64::from_str does
// (optional sign, ASCII digits only). Returns {value} or {err: Response}.
export function intParam(url, name, dflt, { min = -Infinity } = {}) {
  const raw = url.searchParams.get(name);
  if (raw === null) return { value: dflt };
  const value = /^[+-]?[0-9]+$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(value) || value < min) {
    const what = min === 0 ? "a non-negative integer" : "an integer";
    return { err: textError(400, `?${name} must be ${what}, got ${JSON.stringify(raw)}`) };
  }
  return { value };
}

// The request body as UTF-8 text, whatever its content-type (Request.text() warns on form bodies).
export async function bodyText(request) {
  return new TextDecoder().decode(await request.arrayBuffer());
}
