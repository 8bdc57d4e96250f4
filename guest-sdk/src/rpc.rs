//! Exported RPC methods: [`export_rpc!`](crate::export_rpc) writes the glue
//! between an RPC interface's WIT bindings and the class's own methods.

/// Exports methods of a [`DurableObject`](crate::DurableObject) type as the
/// functions of one RPC interface of the class's WIT world.
///
/// ```ignore
/// mod rpc {
///     wit_bindgen::generate!({ path: "../wit", world: "dohost:examples/counter-rpc" });
/// }
///
/// dohost_sdk::export_rpc!(Counter => rpc::exports::dohost::examples::counter {
///     fn increment(by: i64) -> i64;
///     fn get() -> i64;
/// });
/// ```
///
/// Each function calls the method of the same name on the live object
/// (`fn increment(&mut self or &self, by: i64) -> Result<i64>`). A method's
/// `Err` traps: the event is rolled back and the caller gets an error.
/// Methods whose callers should get an error value declare a WIT `result` and
/// return it from `Ok`. One invocation per bindings module (`rpc` above):
/// list every function of the interface.
#[macro_export]
macro_rules! export_rpc {
    (
        $ty:ty => $bindings:ident :: exports $( :: $segment:ident )+ {
            $( fn $method:ident ( $( $arg:ident : $arg_ty:ty ),* $(,)? ) $( -> $ret:ty )? ; )*
        }
    ) => {
        const _: () = {
            struct __DohostRpc;
            impl $bindings::exports $( :: $segment )+ ::Guest for __DohostRpc {
                $(
                    fn $method( $( $arg: $arg_ty ),* ) $( -> $ret )? {
                        $crate::with_object(|object: &mut $ty| object.$method( $( $arg ),* ))
                    }
                )*
            }
            $bindings::export!(__DohostRpc with_types_in $bindings);
        };
    };
}
