# workerd config serving the dohost example Durable Object classes.
# The listen address and the storage directory are given on the command line (see start.sh):
#   workerd serve config.capnp --socket-addr http=127.0.0.1:8787 --directory-path do-storage=/abs/dir
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "main", worker = .mainWorker),
    # Directory holding the objects' SQLite files: one subdirectory per uniqueKey, <id>.sqlite inside.
    # No path here: it must come from --directory-path do-storage=<path>.
    (name = "do-storage", disk = (writable = true)),
  ],
  sockets = [
    # No address here: it must come from --socket-addr http=<addr>.
    (name = "http", service = "main", http = ()),
  ],
);

const mainWorker :Workerd.Worker = (
  modules = [
    (name = "worker.js", esModule = embed "src/worker.js"),
    (name = "common.js", esModule = embed "src/common.js"),
    (name = "counter.js", esModule = embed "src/counter.js"),
    (name = "chatroom.js", esModule = embed "src/chatroom.js"),
    (name = "batcher.js", esModule = embed "src/batcher.js"),
  ],
  compatibilityDate = "2026-11-17",
  bindings = [
    (name = "COUNTER", durableObjectNamespace = "Counter"),
    (name = "CHATROOM", durableObjectNamespace = "ChatRoom"),
    (name = "BATCHER", durableObjectNamespace = "Batcher"),
  ],
  durableObjectNamespaces = [
    # enableSql = true is workerd's equivalent of wrangler's `new_sqlite_classes` migration.
    (className = "Counter", uniqueKey = "dohost-bench-Counter", enableSql = true),
    (className = "ChatRoom", uniqueKey = "dohost-bench-ChatRoom", enableSql = true),
    (className = "Batcher", uniqueKey = "dohost-bench-Batcher", enableSql = true),
  ],
  durableObjectStorage = (localDisk = "do-storage"),
);
