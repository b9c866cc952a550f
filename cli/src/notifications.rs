//! `jobhook notifications replay`: EventBridge's own archive and replay of
//! the notifications bus, started and followed to the end. A consumer that
//! was down gets what it missed again; one that was not dedupes on
//! `transition_id`.

use std::io::Write;
use std::time::Duration;

use aws_sdk_eventbridge::primitives::DateTime;
use aws_sdk_eventbridge::types::{ReplayDestination, ReplayState};
use clap::{Args, Subcommand};
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::{printable, sdk_message, write, CliError};

#[derive(Debug, Subcommand)]
pub enum NotificationsCommand {
    /// Send the notifications of a time window again, from the bus's archive
    /// to every rule on the bus, and wait until the replay ends.
    Replay(ReplayArgs),
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// From this time (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    pub since: OffsetDateTime,
    /// Up to this time (RFC 3339; default now).
    #[arg(long, value_parser = parse_time)]
    pub until: Option<OffsetDateTime>,
    /// The archive of the notifications (the stack's NotificationsArchiveName output).
    #[arg(long, env = "JOBHOOK_NOTIFICATIONS_ARCHIVE")]
    pub archive: String,
    /// The notifications bus (the stack's NotificationsBusName output).
    #[arg(long, env = "JOBHOOK_EVENT_BUS")]
    pub bus: String,
    /// How often to ask how the replay is going, in seconds.
    #[arg(long, default_value_t = 2.0, hide = true)]
    pub poll_secs: f64,
    #[arg(long)]
    pub json: bool,
}

fn parse_time(text: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(text, &Rfc3339)
        .map_err(|_| format!("{text:?} is not an RFC 3339 time (2026-05-13T12:00:00Z)"))
}

fn date_time(t: OffsetDateTime) -> DateTime {
    DateTime::from_millis((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

pub async fn run(
    command: NotificationsCommand,
    aws: &aws_config::SdkConfig,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let NotificationsCommand::Replay(args) = command;
    let now = OffsetDateTime::now_utc();
    let until = args.until.unwrap_or(now);
    if args.since >= until {
        return Err(CliError::Usage("--since must be before --until".into()));
    }
    if until > now {
        return Err(CliError::Usage(
            "--until cannot be in the future: the archive has nothing from then yet".into(),
        ));
    }
    let client = aws_sdk_eventbridge::Client::new(aws);
    let archive = client
        .describe_archive()
        .archive_name(&args.archive)
        .send()
        .await
        .map_err(|e| CliError::Failed(format!("archive {}: {}", args.archive, sdk_message(&e))))?;
    let bus = client
        .describe_event_bus()
        .name(&args.bus)
        .send()
        .await
        .map_err(|e| CliError::Failed(format!("bus {}: {}", args.bus, sdk_message(&e))))?;
    let bus_arn = bus.arn().unwrap_or_default().to_owned();
    if archive.event_source_arn() != Some(bus_arn.as_str()) {
        return Err(CliError::Failed(format!(
            "archive {} keeps the events of {}, not of bus {}",
            args.archive,
            archive.event_source_arn().unwrap_or("no bus"),
            args.bus
        )));
    }
    let name = format!("jobhook-{}", now.unix_timestamp_nanos() / 1_000_000);
    client
        .start_replay()
        .replay_name(&name)
        .event_source_arn(archive.archive_arn().unwrap_or_default())
        .event_start_time(date_time(args.since))
        .event_end_time(date_time(until))
        .destination(
            ReplayDestination::builder()
                .arn(&bus_arn)
                .build()
                .map_err(|e| CliError::Failed(e.to_string()))?,
        )
        .send()
        .await
        .map_err(|e| CliError::Failed(format!("starting the replay: {}", sdk_message(&e))))?;
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(indicatif::ProgressStyle::with_template("{spinner} replay {msg}").expect("valid template"));
    let (state, reason) = loop {
        let replay = client
            .describe_replay()
            .replay_name(&name)
            .send()
            .await
            .map_err(|e| CliError::Failed(format!("replay {name}: {}", sdk_message(&e))))?;
        let state = replay.state().cloned().unwrap_or(ReplayState::Starting);
        let at = replay
            .event_last_replayed_time()
            .map(|t| format!(", replayed up to {t}"))
            .unwrap_or_default();
        bar.set_message(format!("{name}: {}{at}", state.as_str()));
        if matches!(
            state,
            ReplayState::Completed | ReplayState::Failed | ReplayState::Cancelled
        ) {
            break (state, replay.state_reason().map(str::to_owned));
        }
        tokio::time::sleep(Duration::from_secs_f64(args.poll_secs.max(0.05))).await;
    };
    bar.finish_and_clear();
    let (since, until) = (jobhook::clock::rfc3339(args.since), jobhook::clock::rfc3339(until));
    if args.json {
        write(
            out,
            &json!({"replay": name, "state": state.as_str(), "reason": reason, "since": since, "until": until,
                "bus": args.bus})
            .to_string(),
        )?;
    } else {
        write(
            out,
            &format!(
                "replay {name} {}: the notifications from {since} to {until} were sent again to the rules of bus {}",
                state.as_str().to_lowercase(),
                printable(&args.bus)
            ),
        )?;
    }
    match state {
        ReplayState::Completed => Ok(()),
        _ => Err(CliError::Failed(format!(
            "replay {name} ended {}: {}",
            state.as_str(),
            reason
                .as_deref()
                .map(printable)
                .unwrap_or_else(|| "no reason given".into())
        ))),
    }
}
