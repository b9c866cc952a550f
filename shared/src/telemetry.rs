//! Metrics in CloudWatch Embedded Metric Format: counters go through the
//! `metrics` facade to `metrics_cloudwatch_embedded`, which prints one EMF
//! JSON line per flush; CloudWatch Logs turns those into metrics. Every
//! function flushes after each invocation.

use metrics_cloudwatch_embedded::{Builder, Collector};

pub const NAMESPACE: &str = "Jobhook";

/// The metric names, as documented in the README.
pub mod names {
    pub const WEBHOOKS_ACCEPTED: &str = "WebhooksAccepted";
    pub const SIGNATURE_FAILURES: &str = "SignatureFailures";
    pub const ENQUEUE_FAILURES: &str = "EnqueueFailures";
    pub const DELIVERIES_DEFERRED: &str = "DeliveriesDeferred";
    pub const EVENTS_APPLIED: &str = "EventsApplied";
    pub const EVENTS_DUPLICATE: &str = "EventsDuplicate";
    pub const EVENTS_STALE: &str = "EventsStale";
    pub const TERMINAL_CONFLICTS: &str = "TerminalConflicts";
    pub const PERMANENT_FAILURES: &str = "PermanentFailures";
    pub const WRITE_RETRIES: &str = "WriteRetries";
    pub const JOBS_POLLED: &str = "JobsPolled";
    pub const MISSED_WEBHOOKS_RECOVERED: &str = "MissedWebhooksRecovered";
    pub const PROVIDER_POLL_ERRORS: &str = "ProviderPollErrors";
    pub const PROVIDER_RATE_LIMITED: &str = "ProviderRateLimited";
    pub const RECONCILER_STORE_ERRORS: &str = "ReconcilerStoreErrors";
    pub const JOBS_ABANDONED: &str = "JobsAbandoned";
    pub const TERMINAL_FIRST_BY_WEBHOOK: &str = "TerminalFirstByWebhook";
    pub const TERMINAL_FIRST_BY_POLL: &str = "TerminalFirstByPoll";
    pub const NOTIFICATIONS_PUBLISHED: &str = "NotificationsPublished";
    pub const DELIVERIES_IGNORED: &str = "DeliveriesIgnored";
    pub const JOBS_TRACKED: &str = "JobsTracked";
    pub const THIN_EVENT_FETCHES: &str = "ThinEventFetches";
    pub const OUTPUTS_KEPT: &str = "OutputsKept";
    pub const OUTPUTS_EXPIRED_BEFORE_KEPT: &str = "OutputsExpiredBeforeKept";
    pub const OUTPUTS_NOT_KEPT: &str = "OutputsNotKept";
}

/// Logging as Lambda's advanced logging controls set it: the level from
/// `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`, else INFO; JSON lines when
/// `AWS_LAMBDA_LOG_FORMAT` is `JSON`. A level, not per-module directives:
/// parsing those links a regex engine into every function for no use here.
/// Call once, first thing in `main`.
pub fn init_logging() {
    use tracing_subscriber::filter::LevelFilter;
    let var = |name| std::env::var(name).ok();
    let level = var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|| var("RUST_LOG"))
        .and_then(|l| l.trim().parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    let json = var("AWS_LAMBDA_LOG_FORMAT").is_some_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_max_level(level)
        .with_writer(std::io::stdout);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Installs the process-wide collector, with `function` as a dimension of
/// every metric. Call once, in `main`.
pub fn init(function: &'static str) -> Result<&'static Collector, String> {
    Builder::new()
        .cloudwatch_namespace(NAMESPACE)
        .with_dimension("function", function)
        .init()
        .map_err(|e| format!("metrics: {e}"))
}

/// Writes the counts since the last flush to stdout (one EMF line per
/// dimension set) and resets them.
pub fn flush(collector: &Collector) {
    if let Err(error) = collector.flush(std::io::stdout()) {
        tracing::warn!(%error, "metrics flush failed");
    }
}

/// Counts one occurrence per source, and once more without the source, so
/// that alarms can watch the total across sources.
pub fn count(name: &'static str, source: &str) {
    count_n(name, source, 1);
}

/// As [`count`], `n` occurrences at once.
pub fn count_n(name: &'static str, source: &str, n: u64) {
    metrics::counter!(name, "source" => source.to_owned()).increment(n);
    metrics::counter!(name).increment(n);
}

/// As [`count`], with one more label (e.g. a failure reason).
pub fn count_with(name: &'static str, source: &str, label: &'static str, value: &'static str) {
    metrics::counter!(name, "source" => source.to_owned(), label => value).increment(1);
    metrics::counter!(name).increment(1);
}

/// A function's exit: on an error (a setting that does not parse, a sources
/// document that does not load), one readable line on stderr that names the
/// function, where Rust would print the error's `Debug` form.
pub fn exit_code<E: std::fmt::Display>(function: &str, result: Result<(), E>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("jobhook {function}: cannot start: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};

    /// Counters by their name and labels, for one test's thread only.
    #[derive(Default)]
    struct Counted(Mutex<BTreeMap<String, Arc<AtomicU64>>>);

    impl Counted {
        fn value(&self, key: &str) -> Option<u64> {
            self.0.lock().unwrap().get(key).map(|c| c.load(Ordering::Relaxed))
        }
    }

    impl Recorder for Counted {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            let labels: Vec<String> = key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
            let name = format!("{}{{{}}}", key.name(), labels.join(","));
            Counter::from_arc(self.0.lock().unwrap().entry(name).or_default().clone())
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    #[test]
    fn a_count_is_kept_per_source_and_in_the_unlabelled_total_for_alarms() {
        let counted = Counted::default();
        metrics::with_local_recorder(&counted, || {
            super::count(super::names::WEBHOOKS_ACCEPTED, "acme");
            super::count_n(super::names::WEBHOOKS_ACCEPTED, "beta", 2);
            super::count_with(super::names::SIGNATURE_FAILURES, "acme", "reason", "stale");
        });
        assert_eq!(counted.value("WebhooksAccepted{source=acme}"), Some(1));
        assert_eq!(counted.value("WebhooksAccepted{source=beta}"), Some(2));
        assert_eq!(counted.value("WebhooksAccepted{}"), Some(3));
        assert_eq!(counted.value("SignatureFailures{source=acme,reason=stale}"), Some(1));
        assert_eq!(counted.value("SignatureFailures{}"), Some(1));
    }
}
