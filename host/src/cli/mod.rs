//! The `dohost` command line (`client`: the HTTP client of `call` and `alarms`).

mod admin_token;
mod build;
pub mod client;
mod types;

use crate::config::{Config, Overrides};
use crate::runtime::Runtime;
use crate::server::Surface;
use anyhow::Context;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "dohost",
    version,
    about = "Durable objects as WebAssembly components"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the classes of a manifest over HTTP.
    Serve {
        /// The manifest.
        #[arg(long, default_value = "dohost.toml")]
        config: PathBuf,
        /// Listen address (overrides `listen` in the manifest).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Data directory (overrides `data_dir` in the manifest).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Development mode: error bodies include the guest's output (panic
        /// messages, stack traces).
        #[arg(long)]
        dev: bool,
        /// Serve the admin surface on a non-loopback address without a
        /// bearer token (by default one is generated into
        /// `<data_dir>/_dohost/token` unless `DOHOST_ADMIN_TOKEN` is set):
        /// anyone who reaches the port can list objects and read metrics.
        #[arg(long)]
        public: bool,
    },
    /// Call an RPC method of an object on a running server and print the JSON result.
    ///
    /// Each argument is parsed as JSON; one that is not valid JSON is passed as a
    /// string (`dohost call Leaderboard global report alice 10`).
    Call {
        /// The class.
        class: String,
        /// The object's name (or its id, with --id).
        name: String,
        /// The method.
        method: String,
        /// The arguments.
        args: Vec<String>,
        /// Treat NAME as an object id (64 hex characters).
        #[arg(long)]
        id: bool,
        /// The server.
        #[arg(long, default_value = "http://127.0.0.1:8787")]
        url: String,
    },
    /// Validate a manifest and compile its classes into the cache, then exit.
    Check {
        /// The manifest.
        #[arg(long, default_value = "dohost.toml")]
        config: PathBuf,
        /// Data directory (overrides `data_dir` in the manifest).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Build a Cloudflare-style project (a wrangler config with TypeScript or
    /// JavaScript sources and npm packages) into components and a manifest
    /// in `<project>/.dohost/`, to serve with `dohost serve --config`.
    Build {
        /// The project's folder (with wrangler.jsonc, wrangler.json or wrangler.toml).
        #[arg(long, default_value = ".")]
        project: PathBuf,
    },
    /// Write a Cloudflare-style project's `worker-configuration.d.ts` (its
    /// `Env` and dohost's runtime types), as `wrangler types` does, for
    /// `tsc --noEmit`.
    Types {
        /// The project's folder (with wrangler.jsonc, wrangler.json or wrangler.toml).
        #[arg(long, default_value = ".")]
        project: PathBuf,
    },
    /// The manifest's migrations, applied to the data dir or pending (the
    /// next start applies them); fails if the manifest rewrote applied tags.
    Migrations {
        /// The manifest.
        #[arg(long, default_value = "dohost.toml")]
        config: PathBuf,
        /// Data directory (overrides `data_dir` in the manifest).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Print JSON: `[{"tag", "state": "applied" | "pending", "applied_at"}]`.
        #[arg(long)]
        json: bool,
    },
    /// List the scheduled alarms of a running server (earliest first).
    Alarms {
        /// The server.
        #[arg(long, default_value = "http://127.0.0.1:8787")]
        url: String,
    },
}

/// The binary's entry point: runs the command line, prints an error, sets the exit code.
pub fn run() -> std::process::ExitCode {
    match main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs the command line; returns when the command is done.
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DOHOST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match cli.command {
        Command::Serve {
            config,
            listen,
            data_dir,
            dev,
            public,
        } => {
            let overrides = Overrides {
                listen,
                data_dir,
                dev,
            };
            let mut config = Config::load(&config, &overrides)?;
            config.admin_token = admin_token();
            check_exposure(&mut config, public)?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the tokio runtime")?;
            let served = rt.block_on(serve(config));
            // A task that never yields must not keep the process alive.
            rt.shutdown_timeout(SHUTDOWN_BOUND);
            served
        }
        Command::Call {
            class,
            name,
            method,
            args,
            id,
            url,
        } => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the tokio runtime")?;
            rt.block_on(crate::cli::client::call(
                &url, &class, &name, id, &method, &args,
            ))
        }
        Command::Check { config, data_dir } => {
            let overrides = Overrides {
                listen: None,
                data_dir,
                dev: false,
            };
            let config = Config::load(&config, &overrides)?;
            check(&config)
        }
        Command::Build { project } => {
            let manifest = build::build(&project)?;
            println!(
                "built {}; serve it with: dohost serve --config {}",
                project.display(),
                manifest.display()
            );
            Ok(())
        }
        Command::Types { project } => {
            let path = types::write(&project)?;
            println!("wrote {}", path.display());
            Ok(())
        }
        Command::Migrations {
            config,
            data_dir,
            json,
        } => {
            let overrides = Overrides {
                listen: None,
                data_dir,
                dev: false,
            };
            let config = Config::load(&config, &overrides)?;
            print_migrations(&config, json)
        }
        Command::Alarms { url } => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the tokio runtime")?;
            rt.block_on(crate::cli::client::alarms(&url))
        }
    }
}

/// `dohost migrations`: each tag, applied (when) or pending.
fn print_migrations(config: &Config, json: bool) -> anyhow::Result<()> {
    let applied = crate::migrations::applied(&config.data_dir)?;
    let tags = crate::migrations::tags(&config.migrations);
    let order = crate::migrations::check_order(&applied, &tags);
    let rows: Vec<serde_json::Value> = tags
        .iter()
        .enumerate()
        .map(|(i, tag)| match applied.get(i) {
            Some(a) => {
                serde_json::json!({"tag": tag, "state": "applied", "applied_at": a.applied_at})
            }
            None => serde_json::json!({"tag": tag, "state": "pending", "applied_at": null}),
        })
        .collect();
    order.map_err(anyhow::Error::msg)?;
    if json {
        println!("{}", serde_json::Value::Array(rows));
        return Ok(());
    }
    for row in &rows {
        let when = row["applied_at"].as_i64().map(|ms| {
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms as u64);
            humantime::format_rfc3339_seconds(t).to_string()
        });
        let tag = row["tag"].as_str().unwrap_or_default();
        match when {
            Some(when) => println!("{tag:<24} applied {when}"),
            None => println!("{tag:<24} pending"),
        }
    }
    Ok(())
}

/// `dohost check`: every class compiles (or loads from the cache) and links.
fn check(config: &Config) -> anyhow::Result<()> {
    let applied = crate::migrations::applied(&config.data_dir)?;
    crate::migrations::check_order(&applied, &crate::migrations::tags(&config.migrations))
        .map_err(anyhow::Error::msg)?;
    let engine = crate::guest::engine::Engine::new(
        &config.limits,
        &config.cache_dir,
        &config.pooled_components(),
        config.entry_slots(),
    )?;
    for class in &config.classes {
        let loaded = engine.load_class(class)?;
        println!(
            "{:<16} {:>10} bytes  {:>8.1} ms  {:<8} methods: {}",
            class.name,
            loaded.size,
            loaded.load_time.as_secs_f64() * 1e3,
            if loaded.load == crate::guest::engine::LoadKind::Cached {
                "cached"
            } else {
                "compiled"
            },
            loaded.rpc.names().join(", ")
        );
    }
    println!("{} classes OK", config.classes.len());
    if let Some(entry) = &config.entry {
        crate::entry::LoadedEntry::load(&engine, entry)?;
        println!("entry {} OK", entry.component.display());
    }
    Ok(())
}

/// The admin token from `DOHOST_ADMIN_TOKEN`, if set and not empty.
pub(crate) fn admin_token() -> Option<String> {
    std::env::var("DOHOST_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
}

/// Guards the admin surface when it is reachable beyond loopback: with
/// `DOHOST_ADMIN_TOKEN`, or else a token generated into the data dir, unless
/// `--public` says an open surface is intended.
fn check_exposure(config: &mut Config, public: bool) -> anyhow::Result<()> {
    let objects_open = config.entry.as_ref().is_none_or(|e| e.expose_objects);
    if !config.listen.ip().is_loopback() && objects_open {
        tracing::warn!(
            "serving on {} (not a loopback address): every object's /obj/… and /rpc/… routes \
             are open to anyone who reaches it; put an [entry] in front of them (without \
             expose_objects) or an authenticating proxy",
            config.listen
        );
    }
    let admin_on = config.admin_listen.unwrap_or(config.listen);
    if admin_on.ip().is_loopback() || config.admin_token.is_some() {
        return Ok(());
    }
    if public {
        tracing::warn!(
            "serving the admin surface on {admin_on} without an admin token (--public): \
             anyone who reaches it can list objects (their ids act as capabilities) and read \
             metrics under /_dohost/"
        );
        return Ok(());
    }
    let (token, path) = admin_token::load_or_generate(&config.data_dir)?;
    tracing::info!(
        "the admin surface (/_dohost/*) on {admin_on} requires the bearer token in {} \
         (DOHOST_ADMIN_TOKEN sets another)",
        path.display()
    );
    config.admin_token = Some(token);
    Ok(())
}

/// Raises the descriptor limit and fits `max_active` and the connection cap
/// into it (logged).
fn budget_descriptors(config: &mut Config) -> usize {
    let limits = &mut config.limits;
    let plan = crate::fd_budget::plan(
        crate::fd_budget::raise_limit(),
        limits.max_active,
        limits.max_connections,
    );
    if plan.max_active < limits.max_active {
        tracing::warn!(
            "file descriptor limit {} cannot hold limits.max_active = {}: lowered to {} \
             (raise the limit, e.g. `ulimit -n`, to keep it)",
            plan.limit,
            limits.max_active,
            plan.max_active
        );
        limits.max_active = plan.max_active;
    }
    tracing::info!(
        "file descriptors: limit {}, up to {} active objects, {} connections",
        plan.limit,
        plan.max_active,
        plan.max_connections
    );
    plan.max_connections
}

async fn serve(mut config: Config) -> anyhow::Result<()> {
    let listen = config.listen;
    let max_connections = budget_descriptors(&mut config);
    let runtime = Runtime::new(config)?;
    runtime.start();
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let local = listener.local_addr()?;
    tracing::info!(
        "dohost listening on http://{local} (classes: {}; data in {})",
        runtime.class_names().join(", "),
        runtime.config.data_dir.display()
    );
    // Tests and tools wait for this line on stdout.
    println!("listening on http://{local}");
    let shutdown = futures_util::FutureExt::shared(Box::pin(shutdown_signal()));
    let objects = match runtime.config.admin_listen {
        None => Surface::All,
        Some(addr) => {
            let admin = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (admin_listen)"))?;
            let admin_local = admin.local_addr()?;
            tracing::info!("admin surface (/_dohost/*) on http://{admin_local}");
            println!("admin listening on http://{admin_local}");
            let surface = Surface::Admin { objects: local };
            let served = crate::server::serve(
                runtime.clone(),
                admin,
                ADMIN_CONNECTIONS,
                surface,
                shutdown.clone(),
            );
            tokio::spawn(served);
            Surface::Objects { admin: admin_local }
        }
    };
    crate::server::serve(
        runtime.clone(),
        listener,
        max_connections,
        objects,
        shutdown,
    )
    .await;
    tracing::info!("no longer accepting connections; closing sockets and committing");
    runtime.shutdown(SHUTDOWN_BOUND).await;
    tracing::info!("stopped");
    Ok(())
}

/// Connections the admin listener holds at once (operators and their tools).
const ADMIN_CONNECTIONS: usize = 64;

/// How long a graceful shutdown may take after the server stops accepting.
const SHUTDOWN_BOUND: std::time::Duration = std::time::Duration::from_secs(10);

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return ctrl_c.await.unwrap_or(()),
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
