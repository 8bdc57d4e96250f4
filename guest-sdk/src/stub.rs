//! Typed stubs to other objects' RPC methods: [`stub!`](crate::stub).

use serde::Deserialize;

/// A WIT `result<T, E>` as it arrives over RPC (`{"ok": …}` or `{"err": …}`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WitResult<T, E> {
    /// The `ok` case.
    Ok(T),
    /// The `err` case.
    Err(E),
}

impl<T, E> From<WitResult<T, E>> for Result<T, E> {
    fn from(r: WitResult<T, E>) -> Self {
        match r {
            WitResult::Ok(v) => Ok(v),
            WitResult::Err(e) => Err(e),
        }
    }
}

/// Declares a typed stub for another class's RPC methods.
///
/// ```ignore
/// dohost_sdk::stub! {
///     /// The `Counter` class.
///     pub Counter {
///         fn increment(by: i64) -> i64;
///         fn get() -> i64;
///     }
/// }
///
/// let total = Counter::stub_by_name("x")?.increment(3)?;
/// ```
///
/// Method names map to WIT names with `_` as `-` (`add_score` → `add-score`).
/// Write `pub Board as "Leaderboard" { … }` when the Rust name differs from the
/// class name.
#[macro_export]
macro_rules! stub {
    (
        $(#[$meta:meta])*
        $vis:vis $name:ident $(as $class:literal)? {
            $( $(#[$mmeta:meta])* fn $method:ident ( $( $arg:ident : $ty:ty ),* $(,)? ) $( -> $ret:ty )? ; )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        $vis struct $name {
            id: ::std::string::String,
        }

        impl $name {
            /// The class name in the manifest.
            pub const CLASS: &'static str = $crate::stub!(@class $name $($class)?);

            /// The stub of the object named `name`.
            pub fn stub_by_name(name: &str) -> $crate::Result<Self> {
                Ok(Self { id: $crate::State.id_from_name(Self::CLASS, name)? })
            }

            /// The stub of the object with this id.
            pub fn stub_by_id(id: &str) -> $crate::Result<Self> {
                Ok(Self { id: $crate::State.id_from_string(Self::CLASS, id)? })
            }

            /// The object's id.
            pub fn id(&self) -> &str {
                &self.id
            }

            $(
                $(#[$mmeta])*
                pub fn $method(&self $(, $arg: $ty)*) -> $crate::Result<$crate::stub!(@ret $($ret)?)> {
                    $crate::State.call(
                        Self::CLASS,
                        &self.id,
                        &stringify!($method).replace('_', "-"),
                        &($($arg,)*),
                    )
                }
            )*
        }
    };
    (@class $name:ident) => { stringify!($name) };
    (@class $name:ident $class:literal) => { $class };
    (@ret) => { () };
    (@ret $ret:ty) => { $ret };
}
