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
    pub const THIN_EVENT_FETCHES: &str = "ThinEventFetches";
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
