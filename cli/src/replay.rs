//! `jobhook replay`: re-derive jobs from their archives through the current
//! profile code, show the difference, and with `--apply` write it.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use jobhook::archive::Archiver;
use jobhook::domain::job::{JobFields, JobStatus};
use jobhook::domain::provider::{self, ProviderProfile};
use jobhook::ports::{JobQuery, JobStore};
use jobhook::replay::{replay_job, JobReplay, ReplayError};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::{printable, store, store_failed, write, CliError, JobRef, SourcesArgs, Table};

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The job's source (or give --source for every job of a source).
    #[arg(required_unless_present = "bulk_source", requires = "job_id")]
    pub source: Option<String>,
    pub job_id: Option<String>,
    /// Replay every job of this source.
    #[arg(long = "source", value_name = "SOURCE", conflicts_with = "source")]
    pub bulk_source: Option<String>,
    /// With --source: only jobs updated at or after this time (RFC 3339).
    #[arg(long, requires = "bulk_source", value_parser = parse_time)]
    pub since: Option<OffsetDateTime>,
    /// With --source: only jobs in this status.
    #[arg(long, requires = "bulk_source", value_parser = parse_status)]
    pub status: Option<JobStatus>,
    /// Write the corrections (without it, nothing is changed).
    #[arg(long)]
    pub apply: bool,
    /// With --source: the most jobs replayed per second.
    #[arg(long, default_value_t = 20.0, requires = "bulk_source", value_parser = parse_rate)]
    pub rate: f64,
    /// With --source: where the run records how far it got, and resumes from.
    #[arg(long, requires = "bulk_source")]
    pub resume: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub table: Table,
    #[command(flatten)]
    pub sources: SourcesArgs,
}

fn parse_time(text: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(text, &Rfc3339)
        .map_err(|_| format!("{text:?} is not an RFC 3339 time (2026-05-13T12:00:00Z)"))
}

fn parse_status(text: &str) -> Result<JobStatus, String> {
    text.parse()
        .map_err(|()| format!("{text:?} is not a status (submitted, processing, completed, failed, canceled)"))
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate > 0.0 && rate.is_finite() => Ok(rate),
        _ => Err(format!("{text:?} is not a positive number of jobs per second")),
    }
}

/// The fields where the stored job and its archive disagree.
fn differences(stored: &JobFields, derived: &JobFields) -> Vec<(&'static str, Value, Value)> {
    let pairs = [
        ("status", json!(stored.status), json!(derived.status)),
        ("progress", json!(stored.progress), json!(derived.progress)),
        ("output_url", json!(stored.output_url), json!(derived.output_url)),
        ("error", json!(stored.error), json!(derived.error)),
        ("result", json!(stored.result), json!(derived.result)),
    ];
    pairs.into_iter().filter(|(_, a, b)| a != b).collect()
}

fn replay_json(replay: &JobReplay) -> Value {
    let derived = replay.derivation.fields();
    json!({
        "source": replay.stored.source,
        "job_id": replay.stored.job_id,
        "records": replay.derivation.readings.len(),
        "stored": replay.stored.fields,
        "derived": derived,
        "differences": derived.as_ref().map(|d| differences(&replay.stored.fields, d)
            .into_iter()
            .map(|(field, stored, derived)| json!({"field": field, "stored": stored, "derived": derived}))
            .collect::<Vec<_>>()).unwrap_or_default(),
        "applied": replay.applied,
        "transition": replay.applied.then_some(replay.stored.transitions + 1),
    })
}

fn replay_text(replay: &JobReplay, apply: bool) -> String {
    let job = format!(
        "{}/{}",
        printable(&replay.stored.source),
        printable(&replay.stored.job_id)
    );
    let records = replay.derivation.readings.len();
    let Some(derived) = replay.derivation.fields() else {
        return format!("{job}: none of its {records} archived records gives a state; nothing to do");
    };
    let diffs = differences(&replay.stored.fields, &derived);
    if diffs.is_empty() {
        return format!("{job}: matches its archive ({records} records); nothing to do");
    }
    let mut lines = vec![format!(
        "{job}: differs from what its archive gives ({records} records)"
    )];
    for (field, stored, derived) in diffs {
        lines.push(format!(
            "  {field:<11} {} → {}",
            printable(&stored.to_string()),
            printable(&derived.to_string())
        ));
    }
    lines.push(if replay.applied {
        format!("  written as transition {}", replay.stored.transitions + 1)
    } else if apply {
        "  not written".into()
    } else {
        format!(
            "  dry run: nothing written (--apply writes it as transition {})",
            replay.stored.transitions + 1
        )
    });
    lines.join("\n")
}

fn replay_failed(job: &str, error: ReplayError) -> CliError {
    match error {
        ReplayError::Store(e) => CliError::Failed(format!("{job}: {}", crate::port_message(&e))),
        other => CliError::Failed(printable(&other.to_string())),
    }
}

fn profile_of(sources: &jobhook::Sources, source: &str) -> Result<&'static dyn ProviderProfile, CliError> {
    let config = sources
        .get(source)
        .ok_or_else(|| CliError::Failed(format!("no source {source:?} in the sources document")))?;
    provider::profile(&config.provider)
        .ok_or_else(|| CliError::Failed(format!("source {source:?} names no known provider profile")))
}

pub async fn run(args: ReplayArgs, aws: &aws_config::SdkConfig, out: &mut dyn Write) -> Result<(), CliError> {
    let sources = args.sources.load(aws).await?;
    let store = store(aws, &args.table)?;
    let archiver = jobhook::bootstrap::archive_reader(aws);
    match (&args.bulk_source, &args.source, &args.job_id) {
        (None, Some(source), Some(job_id)) => {
            let job = JobRef {
                source: source.clone(),
                job_id: job_id.clone(),
            };
            crate::check(&job)?;
            let profile = profile_of(&sources, source)?;
            let replay = replay_job(&store, &archiver, profile, source, job_id, args.apply)
                .await
                .map_err(|e| replay_failed(&format!("{source}/{job_id}"), e))?;
            if args.json {
                write(
                    out,
                    &serde_json::to_string_pretty(&replay_json(&replay)).expect("serializes"),
                )
            } else {
                write(out, &replay_text(&replay, args.apply))
            }
        }
        (Some(source), _, _) => {
            let profile = profile_of(&sources, source)?;
            bulk(&args, source, profile, &store, &archiver, out).await
        }
        _ => Err(CliError::Usage("give SOURCE JOB_ID, or --source SOURCE".into())),
    }
}

/// Every job of `source` that the filters keep, at most `rate` a second,
/// recording after each page where to resume.
async fn bulk<S: JobStore + JobQuery>(
    args: &ReplayArgs,
    source: &str,
    profile: &dyn ProviderProfile,
    store: &S,
    archiver: &Archiver,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let mut cursor = match &args.resume {
        Some(path) if path.exists() => Some(
            std::fs::read_to_string(path)
                .map_err(|e| CliError::Failed(format!("resume point {}: {e}", path.display())))?,
        ),
        _ => None,
    };
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {pos} jobs replayed {msg}").expect("valid template"),
    );
    let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate));
    let (mut seen, mut differing, mut written, mut failed) = (0u64, 0u64, 0u64, 0u64);
    loop {
        let page = store
            .jobs_of(source, cursor.as_deref())
            .await
            .map_err(|e| store_failed(&args.table.name, &e))?;
        for job in page.jobs {
            let since = args.since.map(jobhook::clock::rfc3339);
            if args.status.is_some_and(|s| s != job.fields.status)
                || since.is_some_and(|since| job.updated_at.as_str() < since.as_str())
            {
                continue;
            }
            interval.tick().await;
            seen += 1;
            bar.inc(1);
            match replay_job(store, archiver, profile, source, &job.job_id, args.apply).await {
                Ok(replay) => {
                    if replay.correction.is_some() {
                        differing += 1;
                        written += u64::from(replay.applied);
                        bar.suspend(|| write(out, &replay_text(&replay, args.apply)))?;
                    }
                }
                Err(error) => {
                    failed += 1;
                    let line = format!("{source}/{}: {}", printable(&job.job_id), printable(&error.to_string()));
                    bar.suspend(|| write(out, &line))?;
                }
            }
            bar.set_message(format!("({differing} differ, {failed} failed)"));
        }
        cursor = page.next;
        match (&cursor, &args.resume) {
            (Some(next), Some(path)) => std::fs::write(path, next)
                .map_err(|e| CliError::Failed(format!("resume point {}: {e}", path.display())))?,
            (None, Some(path)) if path.exists() => std::fs::remove_file(path)
                .map_err(|e| CliError::Failed(format!("resume point {}: {e}", path.display())))?,
            _ => {}
        }
        if cursor.is_none() {
            break;
        }
    }
    bar.finish_and_clear();
    let summary = format!(
        "{seen} jobs replayed: {differing} differ from their archive, {written} corrected, {failed} failed{}",
        if args.apply || differing == 0 {
            ""
        } else {
            " (dry run: --apply writes the corrections)"
        }
    );
    if args.json {
        write(
            out,
            &json!({"replayed": seen, "differ": differing, "corrected": written, "failed": failed}).to_string(),
        )
    } else {
        write(out, &summary)
    }?;
    if failed > 0 {
        return Err(CliError::Failed(format!("{failed} jobs could not be replayed")));
    }
    Ok(())
}
