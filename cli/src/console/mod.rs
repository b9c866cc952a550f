//! `jobhook console`: a web console over the user's own stack, served from
//! this process with the user's own AWS credentials. Pages are rendered on
//! the server (askama templates, HTML-escaped by default) and work without
//! JavaScript; every mutating action is a POST with a CSRF token, after a
//! confirmation page.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use crate::{write, CliError, SourcesArgs};

mod app;
mod reads;
mod views;

pub use app::{router, Console, ConsoleSettings};
pub use reads::ConsoleStore;
pub use views::job_href;

#[derive(Debug, Args)]
pub struct ConsoleArgs {
    /// The port to serve on.
    #[arg(long, default_value_t = 8642)]
    pub port: u16,
    /// The address to serve on. Anything but loopback lets anyone who can
    /// reach it read the jobs and redrive the DLQ: the console has no login.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// A deployed stack: the table, queues and sources secret are read from
    /// its outputs (the flags below override them).
    #[arg(long)]
    pub stack: Option<String>,
    /// The DynamoDB table holding job state.
    #[arg(long = "table", env = "JOBHOOK_TABLE_NAME")]
    pub table: Option<String>,
    /// The events queue, where redriven messages go.
    #[arg(long = "queue-url", env = "JOBHOOK_QUEUE_URL")]
    pub queue_url: Option<String>,
    /// The events dead-letter queue.
    #[arg(long = "dlq-url", env = "JOBHOOK_DLQ_URL")]
    pub dlq_url: Option<String>,
    /// The outputs dead-letter queue (the keeper's).
    #[arg(long = "outputs-dlq-url", env = "JOBHOOK_OUTPUTS_DLQ_URL")]
    pub outputs_dlq_url: Option<String>,
    #[command(flatten)]
    pub sources: SourcesArgs,
    /// The sources to show, when no sources document is given.
    #[arg(long = "source", value_name = "SOURCE")]
    pub source_names: Vec<String>,
    /// The overview's window: jobs active in it are counted (30m, 24h, 7d).
    #[arg(long, default_value = "24h", value_parser = parse_span)]
    pub window: Duration,
    /// An open job due for a poll longer ago than this is overdue: the
    /// reconciler should have polled it.
    #[arg(long, default_value = "10m", value_parser = parse_span)]
    pub overdue_after: Duration,
}

/// `90s`, `30m`, `24h`, `7d`.
pub fn parse_span(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a span such as 90s, 30m, 24h or 7d");
    let unit = text.chars().last().ok_or_else(bad)?;
    let count: u64 = text[..text.len() - unit.len_utf8()].parse().map_err(|_| bad())?;
    let secs = match unit {
        's' => count,
        'm' => count.saturating_mul(60),
        'h' => count.saturating_mul(3600),
        'd' => count.saturating_mul(86_400),
        _ => return Err(bad()),
    };
    if secs == 0 || secs > 400 * 86_400 {
        return Err(format!("{text:?}: a span from 1s to 400d"));
    }
    Ok(Duration::from_secs(secs))
}

/// The stack's outputs the console reads, by output name.
async fn stack_outputs(
    aws: &aws_config::SdkConfig,
    stack: &str,
) -> Result<std::collections::HashMap<String, String>, CliError> {
    let out = aws_sdk_cloudformation::Client::new(aws)
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| CliError::Failed(format!("stack {stack}: {}", crate::sdk_message(&e))))?;
    let found = out
        .stacks()
        .first()
        .ok_or_else(|| CliError::Failed(format!("no stack {stack}")))?;
    Ok(found
        .outputs()
        .iter()
        .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
        .collect())
}

async fn settings(args: ConsoleArgs, aws: &aws_config::SdkConfig) -> Result<ConsoleSettings, CliError> {
    let outputs = match &args.stack {
        Some(stack) => stack_outputs(aws, stack).await?,
        None => Default::default(),
    };
    let from_stack = |name: &str| outputs.get(name).cloned().filter(|v| !v.is_empty());
    let table = args
        .table
        .or_else(|| from_stack("JobsTableName"))
        .ok_or_else(|| CliError::Usage("name the table with --stack, --table or JOBHOOK_TABLE_NAME".into()))?;
    let mut sources_args = args.sources;
    if sources_args.sources_file.is_none() && sources_args.sources_secret.is_none() {
        sources_args.sources_secret = from_stack("SourcesSecret");
    }
    let sources = if sources_args.sources_file.is_some() || sources_args.sources_secret.is_some() {
        Some(sources_args.load(aws).await?)
    } else {
        None
    };
    let mut source_names: Vec<String> = args.source_names;
    if let Some(sources) = &sources {
        source_names.extend(sources.iter().map(|s| s.name.clone()));
    }
    source_names.sort();
    source_names.dedup();
    if let Some(bad) = source_names
        .iter()
        .find(|s| !jobhook::domain::sources::is_valid_source_name(s))
    {
        return Err(CliError::Usage(format!("{bad:?} is not a valid source name")));
    }
    if source_names.is_empty() {
        return Err(CliError::Usage(
            "name the sources: --stack, --sources-file, --sources-secret or --source NAME".into(),
        ));
    }
    Ok(ConsoleSettings {
        table,
        queue_url: args.queue_url.or_else(|| from_stack("EventsQueueUrl")),
        dlq_url: args.dlq_url.or_else(|| from_stack("EventsDlqUrl")),
        outputs_dlq_url: args.outputs_dlq_url.or_else(|| from_stack("OutputsDlqUrl")),
        sources,
        source_names,
        window: args.window,
        overdue_after: args.overdue_after,
    })
}

pub async fn run(args: ConsoleArgs, aws: &aws_config::SdkConfig, out: &mut dyn Write) -> Result<(), CliError> {
    let address = SocketAddr::new(args.bind, args.port);
    let settings = settings(args, aws).await?;
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| CliError::Failed(format!("cannot listen on {address}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| CliError::Failed(format!("cannot listen on {address}: {e}")))?;
    if !bound.ip().is_loopback() {
        eprintln!(
            "jobhook: warning: the console listens on {bound}, not loopback: it has no login, so anyone who can \
             reach that address can read every job and redrive the dead-letter queue"
        );
    }
    // The CLI's own store, so a replay applied here schedules the job's next
    // poll as `jobhook replay` does (JOBHOOK_STALE_AFTER_SECS).
    let store = crate::store(
        aws,
        &crate::Table {
            name: settings.table.clone(),
        },
    )?;
    let console = Arc::new(Console::new(Arc::new(store), aws, settings, bound));
    write(
        out,
        &format!(
            "jobhook console on http://{bound}/ (table {}; Ctrl-C stops it)",
            console.table()
        ),
    )?;
    axum::serve(listener, router(console))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| CliError::Failed(format!("console: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_as_written_and_nonsense_is_refused() {
        assert_eq!(parse_span("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_span("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_span("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_span("7d"), Ok(Duration::from_secs(604_800)));
        for bad in ["", "h", "0h", "5y", "-1h", "1.5h", "999d", "ü"] {
            assert!(parse_span(bad).is_err(), "{bad:?}");
        }
    }
}
