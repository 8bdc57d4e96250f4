// The s64 workaround for componentize-js 0.23.0 (applied when this module is
// loaded, at build time) and `s64(v)`, the fix-up of an exported function's s64
// argument. Calls no host import.

import * as wsql from 'dohost:object/sql@0.2.0';

// Workaround for a componentize-js 0.23.0 bug (ComponentizeJS issue #343): a
// negative s64 passed as a flat core-wasm value — an import argument such as
// `set-alarm(epoch-ms)` or an export's return value such as an RPC method's
// `-> s64` — makes the engine abort (`unreachable`), because its C++ side accepts
// only BigInts that fit a *u64*. The generated bindings run in their own realm
// and convert every s64 with that realm's `BigInt.asIntN(64, v)`; making it
// return the same 64 bits as an unsigned BigInt hands the engine a value it
// accepts, with identical bits. Memory stores (`setBigInt64`) wrap either way.
// Runs once at build time (in the wizer snapshot); skipped if the bindings ever
// share this realm.
//
// The other half of the bug cannot be fixed here: a negative s64 *argument* of
// an exported function arrives as its unsigned value (2^64 + v). Use `s64(v)`.
(function fixS64Lowering() {
  try {
    const BindingsFunction = Object.getPrototypeOf(wsql.exec).constructor;
    const bindingsGlobal = BindingsFunction('return globalThis')();
    if (!bindingsGlobal || bindingsGlobal === globalThis || bindingsGlobal.BigInt === BigInt) return;
    const B = bindingsGlobal.BigInt;
    const asIntN = B.asIntN;
    B.asIntN = function (bits, value) {
      return bits === 64 ? B.asUintN(64, value) : asIntN.call(B, bits, value);
    };
  } catch (e) {
    console.error(`dohost: cannot apply the s64 workaround: ${e}`);
  }
})();

/**
 * An exported function's s64 argument as a signed BigInt (componentize-js 0.23
 * delivers negative ones as 2^64 + v): `increment(by) { by = s64(by); … }`.
 */
export function s64(value) {
  return BigInt.asIntN(64, BigInt(value));
}
