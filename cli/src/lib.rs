//! The `jobhook` command line. `run` takes parsed arguments and writes to any
//! output, so tests drive it without a subprocess.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

pub mod console;
pub mod dlq;
pub mod events;
pub mod listen;
pub mod notifications;
pub mod replay;
pub mod sign;
use jobhook::clock::SystemClock;
use jobhook::domain::job::{JobState, TimelineEntry};
use jobhook::domain::sources::is_valid_source_name;
use jobhook::ports::{JobQuery, JobStore, PortError};

#[derive(Debug, Parser)]
#[command(
    name = "jobhook",
    version,
    about = "Reliable webhooks for async job APIs: inspect and track jobs"
)]
pub struct Cli {
    /// On failure, add the full error chain to the one-line message.
    #[arg(long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

static VERBOSE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// An AWS SDK error as one readable line: what the service said, or why it
/// could not be reached, with what to check. `--verbose` adds the full chain.
pub fn sdk_message<E, R>(error: &aws_sdk_sqs::error::SdkError<E, R>) -> String
where
    E: std::error::Error + aws_sdk_sqs::error::ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_sqs::error::SdkError;
    let line = match error {
        SdkError::ServiceError(ctx) => {
            let code = ctx.err().code().unwrap_or("error");
            let message = ctx.err().message().unwrap_or("no message");
            format!("{code}: {message}{}", setup_hint(Some(code)))
        }
        SdkError::DispatchFailure(_) => {
            "could not reach the AWS endpoint (check the network, the region and AWS_ENDPOINT_URL)".into()
        }
        SdkError::TimeoutError(_) => "the request to AWS timed out".into(),
        SdkError::ConstructionFailure(_) => "the request could not be built (check the region and credentials)".into(),
        _ => "the answer from AWS could not be read".into(),
    };
    if VERBOSE.load(std::sync::atomic::Ordering::Relaxed) {
        format!("{line}\n  detail: {}", aws_sdk_sqs::error::DisplayErrorContext(error))
    } else {
        line
    }
}

/// What to check for an error code that says the setup is wrong; the
/// functions class the same codes as systemic (`jobhook::adapters::setup_fault`).
fn setup_hint(code: Option<&str>) -> &'static str {
    use jobhook::adapters::SetupFault;
    match code.and_then(jobhook::adapters::setup_fault) {
        Some(SetupFault::Denied) => " (check the credentials' permissions)",
        Some(SetupFault::NoQueue) => " (check the queue URL)",
        Some(SetupFault::NoResource) => " (check the resource's name and the region)",
        Some(SetupFault::Credentials) => " (check the credentials: AWS_PROFILE, `aws sso login`)",
        None => "",
    }
}

/// An adapter's error as one readable line, with what to check.
pub fn port_message(error: &jobhook::ports::PortError) -> String {
    format!("{}{}", error.message, setup_hint(error.code.as_deref()))
}

#[derive(Debug, Args)]
pub struct Table {
    /// The DynamoDB table holding job state.
    #[arg(long = "table", env = "JOBHOOK_TABLE_NAME")]
    pub name: String,
}

/// Where the sources document is: the functions' own loaders read it.
#[derive(Debug, Args)]
pub struct SourcesArgs {
    /// The sources document as a file…
    #[arg(long, env = "JOBHOOK_SOURCES_FILE", conflicts_with = "sources_secret")]
    pub sources_file: Option<std::path::PathBuf>,
    /// …or as a Secrets Manager secret.
    #[arg(long, env = "JOBHOOK_SOURCES_SECRET")]
    pub sources_secret: Option<String>,
}

impl SourcesArgs {
    pub async fn load(&self, aws: &aws_config::SdkConfig) -> Result<jobhook::Sources, CliError> {
        use jobhook::config::SourcesLocation;
        let location = match (&self.sources_file, &self.sources_secret) {
            (Some(path), _) => SourcesLocation::File(path.clone()),
            (None, Some(secret)) => SourcesLocation::Secret(secret.clone()),
            (None, None) => {
                return Err(CliError::Usage(
                    "name the sources with --sources-file or --sources-secret (or JOBHOOK_SOURCES_FILE / JOBHOOK_SOURCES_SECRET)"
                        .into(),
                ))
            }
        };
        let text = jobhook::bootstrap::sources_loader(&location, aws)
            .load()
            .await
            .map_err(|e| CliError::Failed(format!("sources: {}", port_message(&e))))?;
        jobhook::Sources::parse(&text).map_err(|e| CliError::Failed(e.to_string()))
    }
}

#[derive(Debug, Args)]
pub struct JobRef {
    pub source: String,
    pub job_id: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Record a job just submitted to the provider, so the reconciler polls it
    /// even if no webhook ever arrives.
    Track {
        #[command(flatten)]
        job: JobRef,
        #[command(flatten)]
        table: Table,
    },
    /// Show a job's state.
    Status {
        #[command(flatten)]
        job: JobRef,
        #[command(flatten)]
        table: Table,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show every event received for a job, oldest first, with its outcome.
    Timeline {
        #[command(flatten)]
        job: JobRef,
        #[command(flatten)]
        table: Table,
        #[arg(long)]
        json: bool,
    },
    /// Show what the provider sent for a job: each archived delivery and poll
    /// answer in order, raw body and headers, and what it did to the job.
    Events {
        #[command(flatten)]
        job: JobRef,
        #[command(flatten)]
        table: Table,
        #[arg(long)]
        json: bool,
    },
    /// Re-derive a job (or every job of a source) from its archive through
    /// the current provider profile; show the difference, and with --apply
    /// write it as a new transition.
    Replay(replay::ReplayArgs),
    /// Print the headers (or a curl command) for a correctly signed test delivery.
    Sign(sign::SignArgs),
    /// Subscribe to the notifications bus and forward each notification to
    /// a local app, signed with Standard Webhooks (or print it).
    Listen(listen::ListenArgs),
    /// Send notifications again from the bus's archive (EventBridge replay).
    Notifications {
        #[command(subcommand)]
        command: notifications::NotificationsCommand,
    },
    /// Serve a web console over the stack: overview, jobs, a job's
    /// timeline and deliveries, dead letters (loopback only, unless --bind).
    Console(console::ConsoleArgs),
    /// Inspect or redrive the dead-letter queue.
    Dlq {
        #[command(subcommand)]
        command: dlq::DlqCommand,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Usage(_) => 2,
            Self::Failed(_) => 1,
        }
    }
}

pub(crate) fn check(job: &JobRef) -> Result<(), CliError> {
    if !is_valid_source_name(&job.source) {
        return Err(CliError::Usage(format!(
            "source {:?} is not a valid source name (letters, digits, '-' and '_')",
            job.source
        )));
    }
    if job.job_id.is_empty() || job.job_id.len() > 256 {
        return Err(CliError::Usage("job id must be 1 to 256 bytes".into()));
    }
    Ok(())
}

pub(crate) fn store(
    aws: &aws_config::SdkConfig,
    table: &Table,
) -> Result<jobhook::adapters::dynamodb::DynamoJobStore, CliError> {
    // A tracked job is first due for a poll as the functions would have it.
    let stale_after =
        jobhook::config::stale_after(&jobhook::config::Env::process()).map_err(|e| CliError::Usage(e.to_string()))?;
    // The timeline TTL only matters to the processor's writes.
    Ok(jobhook::bootstrap::job_store(
        aws,
        &table.name,
        Duration::from_secs(30 * 86_400),
        stale_after,
        Arc::new(SystemClock),
    ))
}

fn failed(table: &str, error: impl std::fmt::Display) -> CliError {
    CliError::Failed(format!("table {table}: {error}"))
}

pub(crate) fn store_failed(table: &str, error: &PortError) -> CliError {
    failed(table, port_message(error))
}

pub(crate) fn write(out: &mut dyn Write, text: &str) -> Result<(), CliError> {
    writeln!(out, "{text}").map_err(|e| CliError::Failed(format!("cannot write output: {e}")))
}

/// A stored value as the terminal may show it: control characters (an ANSI
/// escape in a provider's `output_url`, say) are escaped, never sent raw.
pub fn printable(value: &str) -> String {
    value
        .chars()
        .map(|c| {
            if c.is_control() {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn status_text(state: &JobState) -> String {
    let mut lines = vec![
        format!("job          {}/{}", printable(&state.source), printable(&state.job_id)),
        format!("status       {}", state.fields.status),
    ];
    if let Some(p) = state.fields.progress {
        lines.push(format!("progress     {p}%"));
    }
    if let Some(url) = &state.fields.output_url {
        lines.push(format!("output_url   {}", printable(url)));
    }
    if let Some(error) = &state.fields.error {
        lines.push(format!("error        {}", printable(error)));
    }
    if let Some(result) = &state.fields.result {
        lines.push(format!("result       {}", printable(result)));
    }
    if let Some(origin) = state.terminal_origin {
        lines.push(format!("ended by     {} (first)", origin.as_str()));
    }
    if let Some(at) = &state.abandoned_at {
        lines.push(format!("abandoned    {} (no longer polled)", printable(at)));
    }
    lines.push(format!("first_seen   {}", printable(&state.first_seen)));
    lines.push(format!("updated_at   {}", printable(&state.updated_at)));
    lines.push(format!("transitions  {}", state.transitions));
    lines.join("\n")
}

fn timeline_text(entries: &[TimelineEntry]) -> String {
    let mut lines = vec![format!(
        "{:<26} {:<9} {:<8} {:<16} {:<11} {}",
        "received_at", "outcome", "origin", "kind", "status", "event_id"
    )];
    for e in entries {
        let status = match (e.status, e.progress) {
            (Some(s), Some(p)) => format!("{s} {p}%"),
            (Some(s), None) => s.to_string(),
            (None, _) => "-".into(),
        };
        lines.push(format!(
            "{:<26} {:<9} {:<8} {:<16} {:<11} {}",
            printable(&e.received_at),
            e.outcome.as_str(),
            e.origin.as_str(),
            printable(&e.kind),
            status,
            match (e.repeats, &e.last_received_at) {
                (Some(n), Some(last)) if n > 1 =>
                    format!("{} ({n} times, last {})", printable(&e.event_id), printable(last)),
                _ => printable(&e.event_id),
            }
        ));
    }
    lines.join("\n")
}

pub async fn run(cli: Cli, aws: &aws_config::SdkConfig, out: &mut dyn Write) -> Result<(), CliError> {
    VERBOSE.store(cli.verbose, std::sync::atomic::Ordering::Relaxed);
    match cli.command {
        Command::Track { job, table } => {
            check(&job)?;
            let created = store(aws, &table)?
                .track(&job.source, &job.job_id)
                .await
                .map_err(|e| store_failed(&table.name, &e))?;
            let verb = if created { "tracking" } else { "already known:" };
            write(out, &format!("{verb} {}/{}", job.source, job.job_id))
        }
        Command::Status { job, table, json } => {
            check(&job)?;
            let state = store(aws, &table)?
                .get(&job.source, &job.job_id)
                .await
                .map_err(|e| store_failed(&table.name, &e))?
                .ok_or_else(|| failed(&table.name, format!("no job {}/{}", job.source, job.job_id)))?;
            if json {
                write(out, &serde_json::to_string_pretty(&state).expect("state serializes"))
            } else {
                write(out, &status_text(&state))
            }
        }
        Command::Events { job, table, json } => {
            check(&job)?;
            let entries = store(aws, &table)?
                .timeline(&job.source, &job.job_id)
                .await
                .map_err(|e| store_failed(&table.name, &e))?;
            if entries.is_empty() {
                return Err(failed(
                    &table.name,
                    format!("no events for {}/{}", job.source, job.job_id),
                ));
            }
            let events = events::load(&jobhook::bootstrap::archive_reader(aws), entries).await;
            events::print(&events, json, out)
        }
        Command::Replay(args) => replay::run(args, aws, out).await,
        Command::Sign(args) => sign::run(args, aws, out).await,
        Command::Dlq { command } => dlq::run(command, aws, out).await,
        Command::Console(args) => console::run(args, aws, out).await,
        Command::Listen(args) => listen::run(args, aws, out).await,
        Command::Notifications { command } => notifications::run(command, aws, out).await,
        Command::Timeline { job, table, json } => {
            check(&job)?;
            let entries = store(aws, &table)?
                .timeline(&job.source, &job.job_id)
                .await
                .map_err(|e| store_failed(&table.name, &e))?;
            if json {
                write(
                    out,
                    &serde_json::to_string_pretty(&entries).expect("timeline serializes"),
                )
            } else if entries.is_empty() {
                write(out, &format!("no events for {}/{}", job.source, job.job_id))
            } else {
                write(out, &timeline_text(&entries))
            }
        }
    }
}
