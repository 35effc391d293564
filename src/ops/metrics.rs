//! Prometheus metrics (text exposition format 0.0.4, by the `prometheus`
//! crate), served at `GET /metrics` on the admin listener. Names follow
//! Prometheus conventions: `strata_` prefix, units in the name, `_total`
//! for counters. No label ever carries a tenant, a ref or anything else
//! that grows with the data: routes are templates (`/v1/tenants/{tenantRef}/
//! activities/{ref}`), stores and operations a fixed set.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Instant;

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Every metric strata keeps.
pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub store_operations: IntCounterVec,
    pub store_duration: HistogramVec,
    pub postgres_pool: IntGaugeVec,
    pub boot_step_seconds: GaugeVec,
    pub schema_info: IntGaugeVec,
    pub outbox_backlog: IntGaugeVec,
    pub reconcile_findings: IntGaugeVec,
    pub build_info: IntGaugeVec,
}

/// Latency buckets (seconds): 1 ms to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

impl Metrics {
    fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new(
                "strata_http_requests_total",
                "HTTP requests answered, by listener, route template, method and status.",
            ),
            &["listener", "route", "method", "status"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "strata_http_request_duration_seconds",
                "Time to answer an HTTP request, by listener, route template and method.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["listener", "route", "method"],
        )?;
        let store_operations = IntCounterVec::new(
            Opts::new(
                "strata_store_operations_total",
                "Store operations, by store, operation and outcome (ok or error).",
            ),
            &["store", "operation", "outcome"],
        )?;
        let store_duration = HistogramVec::new(
            HistogramOpts::new(
                "strata_store_operation_duration_seconds",
                "Time of one store operation, by store and operation.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["store", "operation"],
        )?;
        let postgres_pool = IntGaugeVec::new(
            Opts::new(
                "strata_postgres_pool_connections",
                "PostgreSQL pool connections by pool (serving, admin) and state (in_use, idle), and callers waiting for one (waiting).",
            ),
            &["pool", "state"],
        )?;
        let boot_step_seconds = GaugeVec::new(
            Opts::new(
                "strata_boot_step_duration_seconds",
                "How long each step of the last boot took.",
            ),
            &["step"],
        )?;
        let schema_info = IntGaugeVec::new(
            Opts::new(
                "strata_schema_info",
                "The schema each store has (1 per store; its version as a label).",
            ),
            &["store", "version"],
        )?;
        let outbox_backlog = IntGaugeVec::new(
            Opts::new(
                "strata_outbox_backlog",
                "Audit diffs committed in PostgreSQL and not yet in MongoDB.",
            ),
            &["outbox"],
        )?;
        let reconcile_findings = IntGaugeVec::new(
            Opts::new(
                "strata_reconcile_findings",
                "What the last reconciliation found, by kind (dangling, orphan).",
            ),
            &["kind"],
        )?;
        let build_info = IntGaugeVec::new(
            Opts::new("strata_build_info", "The running build (always 1)."),
            &["version", "commit"],
        )?;
        for collector in [
            Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(http_duration.clone()),
            Box::new(store_operations.clone()),
            Box::new(store_duration.clone()),
            Box::new(postgres_pool.clone()),
            Box::new(boot_step_seconds.clone()),
            Box::new(schema_info.clone()),
            Box::new(outbox_backlog.clone()),
            Box::new(reconcile_findings.clone()),
            Box::new(build_info.clone()),
        ] {
            registry.register(collector)?;
        }
        let build = crate::version::BuildInfo::current();
        build_info
            .with_label_values(&[build.version, build.git_commit])
            .set(1);
        Ok(Self {
            registry,
            http_requests,
            http_duration,
            store_operations,
            store_duration,
            postgres_pool,
            boot_step_seconds,
            schema_info,
            outbox_backlog,
            reconcile_findings,
            build_info,
        })
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        let encoder = TextEncoder::new();
        if let Err(e) = encoder.encode(&self.registry.gather(), &mut buffer) {
            tracing::warn!(error = %e, "cannot encode the metrics");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }

    pub fn observe_http(&self, listener: &str, route: &str, method: &str, status: u16, secs: f64) {
        self.http_requests
            .with_label_values(&[listener, route, method, &status.to_string()])
            .inc();
        self.http_duration
            .with_label_values(&[listener, route, method])
            .observe(secs);
    }
}

/// The process's metrics. Registering fixed, valid names cannot fail; if
/// it ever did, metrics would be missing, never the service.
pub fn metrics() -> Option<&'static Metrics> {
    static METRICS: OnceLock<Option<Metrics>> = OnceLock::new();
    METRICS
        .get_or_init(|| match Metrics::new() {
            Ok(metrics) => Some(metrics),
            Err(e) => {
                tracing::warn!(error = %e, "cannot register the metrics");
                None
            }
        })
        .as_ref()
}

/// Times one store operation and counts its outcome.
pub async fn store_op<T, E>(
    store: &'static str,
    operation: &'static str,
    work: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let started = Instant::now();
    let result = work.await;
    if let Some(m) = metrics() {
        let outcome = if result.is_ok() { "ok" } else { "error" };
        m.store_operations
            .with_label_values(&[store, operation, outcome])
            .inc();
        m.store_duration
            .with_label_values(&[store, operation])
            .observe(started.elapsed().as_secs_f64());
    }
    result
}

/// An axum middleware that records every request by its route template.
pub async fn track(
    listener: &'static str,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = request.method().as_str().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    if let Some(m) = metrics() {
        m.observe_http(
            listener,
            &route,
            &method,
            response.status().as_u16(),
            started.elapsed().as_secs_f64(),
        );
    }
    response
}

/// The findings of the last reconcile of every tenant.
pub fn set_reconcile_findings(report: &crate::content::reconcile::Report) {
    if let Some(m) = metrics() {
        m.reconcile_findings
            .with_label_values(&["dangling"])
            .set(report.dangling.len() as i64);
        m.reconcile_findings
            .with_label_values(&["orphan"])
            .set(report.orphans.len() as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_conventions_and_carry_no_refs() {
        let m = metrics().expect("metrics");
        m.observe_http(
            "data",
            "/v1/tenants/{tenantRef}/activities",
            "GET",
            200,
            0.01,
        );
        let text = m.render();
        assert!(
            text.contains("# TYPE strata_http_requests_total counter"),
            "{text}"
        );
        assert!(text.contains("strata_build_info{"), "{text}");
        assert!(
            text.contains("route=\"/v1/tenants/{tenantRef}/activities\""),
            "{text}"
        );
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            assert!(name.starts_with("strata_"), "{line}");
        }
    }
}
