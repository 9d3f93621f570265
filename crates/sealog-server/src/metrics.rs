//! Prometheus metrics (PRODUCT.md §13). Counters and histograms are recorded where things
//! happen; gauges read from the store are refreshed when `/metrics` is scraped.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::state::AppState;

const LATENCY_BUCKETS_S: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.125, 0.25, 1.0, 5.0,
];
const BATCH_BUCKETS: [f64; 10] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0,
];

/// Installs the process-wide recorder once and returns its handle.
pub(crate) fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS_S)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Suffix("_events".into()), &BATCH_BUCKETS)
                })
                .expect("bucket lists are non-empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder (a host program's) wins; ours then renders nothing new.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            keep_up(handle.clone());
            handle
        })
        .clone()
}

/// A histogram keeps every sample it records until they are folded into its buckets, which
/// happens when `/metrics` is scraped or on upkeep. Nothing may scrape a server for hours (or
/// ever), so upkeep runs on its own: without it the server's memory grew with every request.
fn keep_up(handle: PrometheusHandle) {
    let started = std::thread::Builder::new()
        .name("sealog-metrics".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                handle.run_upkeep();
            }
        });
    if let Err(e) = started {
        tracing::warn!(error = %e, "metrics upkeep did not start: histograms grow until scraped");
    }
}

const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "sealog_ingest_events_total",
        "Events by ingest result: appended, duplicate, quarantined, rejected"
    );
    describe_counter!(
        "sealog_quarantine_total",
        "Events quarantined, by reason code"
    );
    describe_counter!(
        "sealog_input_refused_total",
        "Input refused before it became an event, by code"
    );
    describe_histogram!(
        "sealog_append_seconds",
        "From queueing an append to its durable outcome"
    );
    describe_histogram!(
        "sealog_append_batch_events",
        "Events per combined append call"
    );
    describe_histogram!("sealog_query_seconds", "Read latency by endpoint");
    describe_histogram!(
        "sealog_http_request_seconds",
        "HTTP request latency by route"
    );
    describe_counter!(
        "sealog_http_requests_total",
        "HTTP requests by route and status"
    );
    describe_counter!(
        "sealog_access_records_total",
        "audit.access records by outcome"
    );
    describe_counter!(
        "sealog_auth_failures_total",
        "Requests refused for a missing, unknown or revoked key"
    );
    describe_counter!(
        "sealog_backpressure_total",
        "Appends refused because the queue was full or closing"
    );
    describe_gauge!("sealog_tree_size", "Records in the log");
    describe_gauge!(
        "sealog_checkpoint_size",
        "Tree size of the newest signed checkpoint"
    );
    describe_gauge!(
        "sealog_checkpoint_age_seconds",
        "Seconds since the newest checkpoint was written"
    );
    describe_gauge!(
        "sealog_store_commits",
        "Group commits since the store opened"
    );
    describe_gauge!(
        "sealog_store_committed_events",
        "Events committed since the store opened"
    );
    describe_gauge!("sealog_store_fsyncs", "fsyncs since the store opened");
    describe_gauge!(
        "sealog_store_compressed_segments",
        "Sealed segments compressed since the store opened"
    );
    describe_gauge!(
        "sealog_store_compress_failing",
        "1 once a compression of a sealed segment failed since the store opened (it stays plain)"
    );
    describe_gauge!(
        "sealog_store_fsync_seconds",
        "Time the writer spent in fsync since the store opened"
    );
    describe_gauge!(
        "sealog_append_queue_requests",
        "Append requests waiting for a thread"
    );
    describe_gauge!(
        "sealog_request_buffered_bytes",
        "Bytes of request bodies (and their events' results) reserved in memory now, against --buffered-bytes-max"
    );
    describe_counter!(
        "sealog_buffer_refused_total",
        "Requests refused with 503 because the memory budget of request bodies was full"
    );
    describe_gauge!(
        "sealog_open_mode",
        "1 while no API key exists and requests are not authenticated"
    );
}

pub(crate) fn refresh_gauges(state: &AppState) {
    let (stats, _) = state.ledger.stats();
    metrics::gauge!("sealog_tree_size").set(stats.records as f64);
    metrics::gauge!("sealog_store_commits").set(stats.commits as f64);
    metrics::gauge!("sealog_store_committed_events").set(stats.committed_events as f64);
    metrics::gauge!("sealog_store_fsyncs").set(stats.fsyncs as f64);
    metrics::gauge!("sealog_store_fsync_seconds").set(stats.sync_ns as f64 / 1e9);
    metrics::gauge!("sealog_store_compressed_segments").set(stats.compressed_segments as f64);
    metrics::gauge!("sealog_store_compress_failing")
        .set(f64::from(u8::from(stats.compress_failed.is_some())));
    metrics::gauge!("sealog_append_queue_requests").set(state.appender.queued() as f64);
    metrics::gauge!("sealog_request_buffered_bytes").set(state.budget.used() as f64);
    metrics::gauge!("sealog_open_mode").set(if state.keys.open_mode() { 1.0 } else { 0.0 });
    if let Some(at) = stats.checkpoint_at {
        let age = at.elapsed().unwrap_or_default();
        metrics::gauge!("sealog_checkpoint_age_seconds").set(age.as_secs_f64());
    }
    if let Some(size) = stats.checkpoint_size {
        metrics::gauge!("sealog_checkpoint_size").set(size as f64);
    }
    if let Some(w) = state.witnessing() {
        metrics::gauge!("sealog_checkpoint_unwitnessed_records")
            .set(w["unwitnessed_records"].as_f64().unwrap_or(0.0));
        for p in w["witnesses"].as_array().into_iter().flatten() {
            let name = p["name"].as_str().unwrap_or_default().to_string();
            metrics::gauge!("sealog_witness_failures", "witness" => name)
                .set(p["failures"].as_f64().unwrap_or(0.0));
        }
    }
}

#[cfg(test)]
mod tests {
    /// The threads of this process by name (`/proc/self/task/*/comm`).
    fn thread_names() -> Vec<String> {
        std::fs::read_dir("/proc/self/task")
            .expect("/proc/self/task")
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .map(|n| n.trim_end().to_string())
            .collect()
    }

    #[test]
    fn histograms_are_kept_up_without_a_scrape() {
        let _ = super::install();
        let _ = super::install();
        let upkeep = || {
            thread_names()
                .iter()
                .filter(|n| *n == "sealog-metrics")
                .count()
        };
        // A new thread names itself once it runs.
        sealog_testkit::wait_for(10, "the upkeep thread to name itself", || {
            (upkeep() > 0).then_some(())
        });
        assert_eq!(upkeep(), 1, "one upkeep thread for the one recorder");
    }
}
