//! URL routing as a pure function (unit-tested, property-tested and fuzzed):
//! a request path becomes a `Route` or a `RouteError` with its HTTP status.
//! Names are percent-decoded; ids must be canonical; nothing here touches the
//! file system or knows the loaded classes.

use crate::id::ObjectId;

/// Which object a URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectAddress {
    Name(String),
    Id(ObjectId),
}

impl ObjectAddress {
    /// The id in `class`, and the name if the URL gave one.
    pub fn resolve(self, class: &str) -> (ObjectId, Option<String>) {
        match self {
            ObjectAddress::Name(name) => (ObjectId::from_name(class, &name), Some(name)),
            ObjectAddress::Id(id) => (id, None),
        }
    }
}

/// A parsed request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Health,
    Metrics,
    Alarms,
    /// `/obj/<class>/<name>|id/<hex>/<path…>`; `path` starts with `/`.
    Object {
        class: String,
        target: ObjectAddress,
        path: String,
    },
    /// `GET /rpc/<class>`.
    RpcDescribe {
        class: String,
    },
    /// `/rpc/<class>/<name>|id/<hex>/<method>`.
    RpcCall {
        class: String,
        target: ObjectAddress,
        method: String,
    },
}

impl Route {
    /// True for the admin surface (`/_dohost/*`).
    pub fn is_admin(&self) -> bool {
        matches!(self, Route::Health | Route::Metrics | Route::Alarms)
    }
}

/// A path that names nothing valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteError {
    pub status: u16,
    pub message: String,
}

fn not_found(message: impl Into<String>) -> RouteError {
    RouteError {
        status: 404,
        message: message.into(),
    }
}

fn bad_request(message: impl Into<String>) -> RouteError {
    RouteError {
        status: 400,
        message: message.into(),
    }
}

/// Decodes `%XX` escapes of a path segment (UTF-8).
pub fn percent_decode(segment: &str) -> Result<String, String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("invalid percent-escape in {segment:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{segment:?} is not UTF-8 once decoded"))
}

fn name_target(segment: &str) -> Result<ObjectAddress, RouteError> {
    match percent_decode(segment) {
        Ok(name) if !name.is_empty() => match crate::id::check_name(&name) {
            Ok(()) => Ok(ObjectAddress::Name(name)),
            Err(e) => Err(bad_request(e)),
        },
        Ok(_) => Err(bad_request(
            "empty object name: use /obj/<class>/<name>/<path>",
        )),
        Err(e) => Err(bad_request(format!("bad object name: {e}"))),
    }
}

fn id_target(hex: &str) -> Result<ObjectAddress, RouteError> {
    ObjectId::parse(hex)
        .map(ObjectAddress::Id)
        .map_err(|e| bad_request(e.to_string()))
}

const ROUTES_HINT: &str = "use /obj/<class>/<name>/<path>, /obj/<class>/id/<hex>/<path>, \
     /rpc/<class>[/<name>/<method>], /_dohost/health, /_dohost/metrics or /_dohost/alarms";

/// Parses a request path (without the query).
pub fn parse(path: &str) -> Result<Route, RouteError> {
    let rest = path.strip_prefix('/').unwrap_or(path);
    if let Some(admin) = rest.strip_prefix("_dohost/") {
        return match admin {
            "health" => Ok(Route::Health),
            "metrics" => Ok(Route::Metrics),
            "alarms" => Ok(Route::Alarms),
            _ => Err(not_found(format!("no route for {path}; {ROUTES_HINT}"))),
        };
    }
    if let Some(obj) = rest.strip_prefix("obj/") {
        // <class>/<name>[/<path…>] or <class>/id/<hex>[/<path…>]
        let mut parts = obj.splitn(3, '/');
        let class = parts.next().unwrap_or_default();
        let (Some(target), tail) = (parts.next(), parts.next()) else {
            return Err(not_found(
                "missing object: use /obj/<class>/<name>/<path> or /obj/<class>/id/<hex>/<path>",
            ));
        };
        let (target, tail) = if target == "id" {
            let tail = tail.unwrap_or("");
            let (hex, rest) = tail.split_once('/').unwrap_or((tail, ""));
            (id_target(hex)?, rest)
        } else {
            (name_target(target)?, tail.unwrap_or(""))
        };
        return Ok(Route::Object {
            class: class.to_string(),
            target,
            path: format!("/{tail}"),
        });
    }
    if let Some(rpc) = rest.strip_prefix("rpc/") {
        let segments: Vec<&str> = rpc.split('/').collect();
        let class = segments[0].to_string();
        return match &segments[1..] {
            [] | [""] => Ok(Route::RpcDescribe { class }),
            ["id", hex, method] => Ok(Route::RpcCall {
                class,
                target: id_target(hex)?,
                method: method.to_string(),
            }),
            [name, method] if *name != "id" => Ok(Route::RpcCall {
                class,
                target: name_target(name)?,
                method: method.to_string(),
            }),
            _ => Err(not_found(
                "use /rpc/<class>/<name>/<method> or /rpc/<class>/id/<hex>/<method>",
            )),
        };
    }
    Err(not_found(format!("no route for {path}; {ROUTES_HINT}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(class: &str, target: ObjectAddress, path: &str) -> Route {
        Route::Object {
            class: class.into(),
            target,
            path: path.into(),
        }
    }

    #[test]
    fn object_routes_by_name_and_by_id() {
        let id = ObjectId::from_name("C", "x");
        assert_eq!(
            parse("/obj/C/x/inc/r").unwrap(),
            obj("C", ObjectAddress::Name("x".into()), "/inc/r")
        );
        assert_eq!(
            parse("/obj/C/x").unwrap(),
            obj("C", ObjectAddress::Name("x".into()), "/")
        );
        assert_eq!(
            parse("/obj/C/a%20b/").unwrap(),
            obj("C", ObjectAddress::Name("a b".into()), "/")
        );
        assert_eq!(
            parse(&format!("/obj/C/id/{id}/p")).unwrap(),
            obj("C", ObjectAddress::Id(id), "/p")
        );
        assert_eq!(
            parse(&format!("/obj/C/id/{id}")).unwrap(),
            obj("C", ObjectAddress::Id(id), "/")
        );
    }

    #[test]
    fn bad_object_paths_say_what_is_wrong() {
        assert_eq!(parse("/obj/C").unwrap_err().status, 404);
        assert_eq!(parse("/obj/C/").unwrap_err().status, 400);
        assert!(parse("/obj/C/id/zz")
            .unwrap_err()
            .message
            .contains("64 lowercase hex"));
        assert!(parse("/obj/C/%zz/")
            .unwrap_err()
            .message
            .contains("percent-escape"));
        assert!(parse("/obj/C/%ff/")
            .unwrap_err()
            .message
            .contains("not UTF-8"));
        assert_eq!(parse("/nowhere").unwrap_err().status, 404);
    }

    #[test]
    fn rpc_and_admin_routes() {
        assert_eq!(
            parse("/rpc/C").unwrap(),
            Route::RpcDescribe { class: "C".into() }
        );
        assert_eq!(
            parse("/rpc/C/").unwrap(),
            Route::RpcDescribe { class: "C".into() }
        );
        assert_eq!(
            parse("/rpc/C/n/m").unwrap(),
            Route::RpcCall {
                class: "C".into(),
                target: ObjectAddress::Name("n".into()),
                method: "m".into()
            }
        );
        assert_eq!(parse("/rpc/C/n/m/x").unwrap_err().status, 404);
        assert_eq!(parse("/_dohost/health").unwrap(), Route::Health);
        assert_eq!(parse("/_dohost/alarms").unwrap(), Route::Alarms);
    }
}
