//! Prometheus metrics of the runtime, served at `/_dohost/metrics`.
//!
//! Gauges that track a resource (live instances) are moved by RAII guards, so
//! they cannot drift when an instance is dropped on an error path.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClassLabel {
    pub class: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    pub class: String,
    pub kind: String,
    pub outcome: String,
}

/// `from`: "entry" or the class; `host`: the allow-list entry that let the
/// request out (empty when denied: a guest cannot grow the label set).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutboundLabels {
    pub from: String,
    pub host: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

/// Every metric of the process.
pub struct Metrics {
    registry: Registry,
    pub instances_active: Gauge,
    pub objects_hibernated: Gauge,
    pub instantiations: Family<ClassLabel, Counter>,
    pub events: Family<EventLabels, Counter>,
    pub mailbox_depth: Gauge,
    pub hibernations: Family<ReasonLabel, Counter>,
    pub commits: Counter,
    pub events_committed: Counter,
    pub sockets_active: Gauge,
    pub objects_hibernated_with_sockets: Gauge,
    pub socket_auto_responses: Counter,
    pub socket_wakeups: Counter,
    pub alarms: Family<AlarmLabels, Counter>,
    /// Outbound HTTP requests by sender, allow-list entry and outcome.
    pub outbound: Family<OutboundLabels, Counter>,
    /// Objects with a running actor (active, or waiting for a slot).
    pub actors: Gauge,
    /// Objects the socket hub keeps an entry for (those with open sockets).
    pub socket_objects: Gauge,
    /// Bytes of temporary files of guest queries.
    pub temp_bytes: Gauge,
    event_counters: std::sync::RwLock<EventCounters>,
}

/// (kind, outcome) → class → counter.
type EventCounters = std::collections::HashMap<
    (&'static str, &'static str),
    std::collections::HashMap<String, Counter>,
>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlarmLabels {
    pub class: String,
    /// fired (the handler ran), retried (a retry was scheduled), failed (given up).
    pub outcome: String,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let m = Metrics {
            instances_active: Gauge::default(),
            objects_hibernated: Gauge::default(),
            instantiations: Family::default(),
            events: Family::default(),
            mailbox_depth: Gauge::default(),
            hibernations: Family::default(),
            commits: Counter::default(),
            events_committed: Counter::default(),
            sockets_active: Gauge::default(),
            objects_hibernated_with_sockets: Gauge::default(),
            socket_auto_responses: Counter::default(),
            socket_wakeups: Counter::default(),
            alarms: Family::default(),
            outbound: Family::default(),
            actors: Gauge::default(),
            socket_objects: Gauge::default(),
            temp_bytes: Gauge::default(),
            event_counters: Default::default(),
            registry: Registry::default(),
        };
        m.register_objects(&mut registry);
        m.register_sockets_and_host(&mut registry);
        Metrics { registry, ..m }
    }
}

impl Metrics {
    /// Instances, events, hibernation and commits.
    fn register_objects(&self, registry: &mut Registry) {
        let m = self;
        registry.register(
            "dohost_instances_active",
            "Objects with a live component instance",
            m.instances_active.clone(),
        );
        registry.register(
            "dohost_objects_hibernated",
            "Objects evicted from memory (idle or LRU) and not woken since",
            m.objects_hibernated.clone(),
        );
        registry.register(
            "dohost_instantiations",
            "Component instances created",
            m.instantiations.clone(),
        );
        registry.register(
            "dohost_events",
            "Events delivered, by class, kind and outcome",
            m.events.clone(),
        );
        registry.register(
            "dohost_mailbox_depth",
            "Events queued in object mailboxes",
            m.mailbox_depth.clone(),
        );
        registry.register(
            "dohost_hibernations",
            "Instances evicted, by reason (idle, lru)",
            m.hibernations.clone(),
        );
        registry.register(
            "dohost_commits",
            "Storage transactions committed (each covers one or more events)",
            m.commits.clone(),
        );
        registry.register(
            "dohost_events_committed",
            "Events made durable by those commits",
            m.events_committed.clone(),
        );
    }

    /// WebSockets, alarms, actors and temporary files.
    fn register_sockets_and_host(&self, registry: &mut Registry) {
        let m = self;
        registry.register(
            "dohost_websockets_active",
            "Open WebSockets (host-owned)",
            m.sockets_active.clone(),
        );
        registry.register(
            "dohost_objects_hibernated_with_sockets",
            "Objects without a live instance that hold open WebSockets",
            m.objects_hibernated_with_sockets.clone(),
        );
        registry.register(
            "dohost_websocket_auto_responses",
            "Messages answered with the auto-response, without waking the object",
            m.socket_auto_responses.clone(),
        );
        registry.register(
            "dohost_websocket_wakeups",
            "Instances created to handle a WebSocket event",
            m.socket_wakeups.clone(),
        );
        registry.register(
            "dohost_alarms",
            "Alarm handler runs (fired), retries scheduled (retried) and alarms given up (failed)",
            m.alarms.clone(),
        );
        registry.register(
            "dohost_outbound_requests",
            "Outbound HTTP requests of entries and objects, by sender (from), allow-list entry \
             (host) and outcome (ok, error, denied)",
            m.outbound.clone(),
        );
        registry.register(
            "dohost_actors",
            "Objects with a running actor (active, or waiting for an active slot)",
            m.actors.clone(),
        );
        registry.register(
            "dohost_websocket_objects",
            "Objects with at least one open WebSocket",
            m.socket_objects.clone(),
        );
        registry.register(
            "dohost_temp_bytes",
            "Bytes of temporary files of guest queries (limits.max_temp_bytes)",
            m.temp_bytes.clone(),
        );
    }
}

impl Metrics {
    /// The metrics in Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Counts an event. The counter handle is cached (this runs for every
    /// event; building the label set allocates).
    pub fn event(&self, class: &str, kind: &'static str, outcome: &'static str) {
        let cached = self.event_counters.read().ok().and_then(|m| {
            m.get(&(kind, outcome))
                .and_then(|by_class| by_class.get(class).cloned())
        });
        let counter = cached.unwrap_or_else(|| {
            let counter = self
                .events
                .get_or_create(&EventLabels {
                    class: class.to_string(),
                    kind: kind.to_string(),
                    outcome: outcome.to_string(),
                })
                .clone();
            if let Ok(mut m) = self.event_counters.write() {
                m.entry((kind, outcome))
                    .or_default()
                    .insert(class.to_string(), counter.clone());
            }
            counter
        });
        counter.inc();
    }

    pub fn alarm(&self, class: &str, outcome: &str) {
        self.alarms
            .get_or_create(&AlarmLabels {
                class: class.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    pub fn outbound(&self, from: &str, host: &str, outcome: &str) {
        self.outbound
            .get_or_create(&OutboundLabels {
                from: from.to_string(),
                host: host.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    pub fn hibernation(&self, reason: &str) {
        self.hibernations
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Counts a new instance; the guard uncounts it when dropped.
    pub fn instance_started(&self, class: &str) -> LiveGuard {
        self.instantiations
            .get_or_create(&ClassLabel {
                class: class.to_string(),
            })
            .inc();
        LiveGuard::new(self.instances_active.clone())
    }
}

/// Holds one unit of a gauge while alive.
pub struct LiveGuard(Gauge);

impl LiveGuard {
    pub fn new(gauge: Gauge) -> Self {
        gauge.inc();
        LiveGuard(gauge)
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
