//! `jobhook dlq`: what the processor could never apply, and why; and moving
//! it back once the cause is fixed.

use std::io::{IsTerminal, Write};

use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, Message, MessageAttributeValue, MessageSystemAttributeName,
    QueueAttributeName, SendMessageBatchRequestEntry,
};
use aws_sdk_sqs::Client;
use clap::Subcommand;
use jobhook::adapters::sqs::delete_entries;
use serde_json::json;

use crate::{write, CliError};

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List the dead-lettered messages with their reasons (they stay on the queue).
    List {
        #[arg(long = "dlq-url", env = "JOBHOOK_DLQ_URL")]
        dlq_url: String,
        #[arg(long)]
        json: bool,
    },
    /// Move every dead-lettered message back to the main queue.
    Redrive {
        #[arg(long = "dlq-url", env = "JOBHOOK_DLQ_URL")]
        dlq_url: String,
        #[arg(long = "queue-url", env = "JOBHOOK_QUEUE_URL")]
        queue_url: String,
        /// `move-task`: SQS moves them itself (StartMessageMoveTask); `copy`:
        /// receive, send, delete, batch by batch; `auto`: the move task where
        /// the queue supports it (AWS), else copy (moto).
        #[arg(long, value_enum, default_value_t = RedriveMethod::Auto)]
        method: RedriveMethod,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RedriveMethod {
    Auto,
    MoveTask,
    Copy,
}

/// A receive waits this long for messages: a long poll asks every SQS
/// server, where a short one samples only some and can miss messages.
const RECEIVE_WAIT_SECS: i32 = 2;
/// Empty receives in a row, with the queue reporting nothing visible, that
/// mean the queue has been read to the end…
const EMPTY_RECEIVES_TO_STOP: u32 = 2;
/// …or this many in a row whatever the (approximate) count says.
const EMPTY_RECEIVES_AT_MOST: u32 = 8;

/// Decides when a queue has been read to the end.
#[derive(Debug, Default)]
struct EndOfQueue {
    empty_and_none_visible: u32,
    empty: u32,
}

impl EndOfQueue {
    /// After an empty receive, with SQS reporting `visible` messages.
    fn reached(&mut self, visible: u64) -> bool {
        self.empty += 1;
        if visible == 0 {
            self.empty_and_none_visible += 1;
        }
        self.empty_and_none_visible >= EMPTY_RECEIVES_TO_STOP || self.empty >= EMPTY_RECEIVES_AT_MOST
    }

    fn reset(&mut self) {
        *self = Self::default();
    }
}

/// While listing, messages are hidden for this long, then made visible again.
const LIST_VISIBILITY_SECS: i32 = 60;

fn failed(queue: &str, error: impl std::fmt::Display) -> CliError {
    CliError::Failed(format!("queue {queue}: {error}"))
}

fn sdk_failed<E, R>(queue: &str, error: aws_sdk_sqs::error::SdkError<E, R>) -> CliError
where
    E: std::error::Error + aws_sdk_sqs::error::ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    failed(queue, crate::sdk_message(&error))
}

pub(crate) fn attribute<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
    message.message_attributes()?.get(name)?.string_value()
}

pub(crate) async fn approximate_count(sqs: &Client, url: &str) -> Result<u64, CliError> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .map_err(|e| sdk_failed(url, e))?;
    Ok(out
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::ApproximateNumberOfMessages))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

async fn receive(sqs: &Client, url: &str, visibility: i32) -> Result<Vec<Message>, CliError> {
    receive_waiting(sqs, url, visibility, RECEIVE_WAIT_SECS).await
}

async fn receive_waiting(sqs: &Client, url: &str, visibility: i32, wait_secs: i32) -> Result<Vec<Message>, CliError> {
    Ok(sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .visibility_timeout(visibility)
        .wait_time_seconds(wait_secs)
        .message_attribute_names("All")
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .map_err(|e| sdk_failed(url, e))?
        .messages
        .unwrap_or_default())
}

pub async fn run(command: DlqCommand, aws: &aws_config::SdkConfig, out: &mut dyn Write) -> Result<(), CliError> {
    let sqs = Client::new(aws);
    match command {
        DlqCommand::List { dlq_url, json } => list(&sqs, &dlq_url, json, out).await,
        DlqCommand::Redrive {
            dlq_url,
            queue_url,
            method,
            json,
        } => {
            let (moved, how) = match method {
                RedriveMethod::Copy => (copy_back(&sqs, &dlq_url, &queue_url).await?, "copied"),
                RedriveMethod::MoveTask => match move_task(&sqs, &dlq_url, &queue_url).await {
                    Ok(moved) => (moved, "SQS message move task"),
                    Err(MoveTaskError::Unavailable(why)) => {
                        return Err(failed(&dlq_url, format!("no SQS message move task: {why}")))
                    }
                    Err(MoveTaskError::Failed(error)) => return Err(error),
                },
                RedriveMethod::Auto => match move_task(&sqs, &dlq_url, &queue_url).await {
                    Ok(moved) => (moved, "SQS message move task"),
                    Err(MoveTaskError::Unavailable(why)) => {
                        eprintln!("jobhook: no SQS message move task here ({why}); copying batch by batch");
                        (copy_back(&sqs, &dlq_url, &queue_url).await?, "copied")
                    }
                    Err(MoveTaskError::Failed(error)) => return Err(error),
                },
            };
            if json {
                let method = if how == "copied" { "copy" } else { "move-task" };
                let report = json!({"moved": moved, "method": method, "from": dlq_url, "to": queue_url});
                write(out, &report.to_string())
            } else {
                write(
                    out,
                    &format!("moved {moved} message(s) from the dead-letter queue back to {queue_url} ({how})"),
                )
            }
        }
    }
}

/// Receives until the queue is read to the end: long polls, and stops only
/// once receives come back empty and SQS reports nothing visible.
async fn receive_all(sqs: &Client, url: &str, visibility: i32) -> Result<Vec<Message>, CliError> {
    let mut messages: Vec<Message> = Vec::new();
    let mut ends = EndOfQueue::default();
    loop {
        let batch = receive(sqs, url, visibility).await?;
        if batch.is_empty() {
            if ends.reached(approximate_count(sqs, url).await?) {
                return Ok(messages);
            }
            continue;
        }
        ends.reset();
        messages.extend(batch);
    }
}

async fn list(sqs: &Client, url: &str, json: bool, out: &mut dyn Write) -> Result<(), CliError> {
    let messages = receive_all(sqs, url, LIST_VISIBILITY_SECS).await?;
    // Make them visible again right away: listing must not hide them.
    show_again(sqs, url, &messages).await?;
    let reason = |m: &Message| {
        attribute(m, "reason")
            .unwrap_or("retries exhausted (no reason recorded)")
            .to_owned()
    };
    if json {
        let rows: Vec<serde_json::Value> = messages
            .iter()
            .map(|m| {
                json!({"message_id": m.message_id(), "source": attribute(m, "source"), "reason": reason(m),
                       "receive_count": m.attributes().and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount)),
                       "body": m.body()})
            })
            .collect();
        return write(out, &serde_json::to_string_pretty(&rows).expect("rows serialize"));
    }
    if messages.is_empty() {
        return write(out, "the dead-letter queue is empty");
    }
    write(
        out,
        &format!("{:<38} {:<12} {:>7}  reason", "message_id", "source", "bytes"),
    )?;
    for m in &messages {
        write(
            out,
            &format!(
                "{:<38} {:<12} {:>7}  {}",
                m.message_id().unwrap_or("-"),
                attribute(m, "source").unwrap_or("-"),
                m.body().map(str::len).unwrap_or(0),
                reason(m)
            ),
        )?;
    }
    write(out, &format!("{} message(s)", messages.len()))
}

enum MoveTaskError {
    /// The queue service has no move task (moto), or the DLQ is not one SQS
    /// can move from: the copy path can still do it.
    Unavailable(String),
    Failed(CliError),
}

async fn queue_arn(sqs: &Client, url: &str) -> Result<String, CliError> {
    jobhook::adapters::sqs::queue_arn(sqs, url)
        .await
        .map_err(|e| failed(url, crate::port_message(&e)))
}

/// `StartMessageMoveTask`, then `ListMessageMoveTasks` until it ends.
async fn move_task(sqs: &Client, dlq: &str, queue: &str) -> Result<u64, MoveTaskError> {
    let source = queue_arn(sqs, dlq).await.map_err(MoveTaskError::Failed)?;
    let destination = queue_arn(sqs, queue).await.map_err(MoveTaskError::Failed)?;
    let started = sqs
        .start_message_move_task()
        .source_arn(&source)
        .destination_arn(&destination)
        .send()
        .await;
    let handle = match started {
        Ok(out) => out.task_handle().unwrap_or_default().to_owned(),
        Err(error) => {
            use aws_sdk_sqs::error::ProvideErrorMetadata;
            let denied =
                error.code().and_then(jobhook::adapters::setup_fault) == Some(jobhook::adapters::SetupFault::Denied);
            let message = crate::sdk_message(&error);
            return Err(if denied {
                MoveTaskError::Failed(failed(
                    dlq,
                    format!("{message} (allow sqs:StartMessageMoveTask, or use --method copy)"),
                ))
            } else {
                MoveTaskError::Unavailable(message)
            });
        }
    };
    let progress = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} messages moved").expect("valid template"),
        );
        bar
    });
    loop {
        let tasks = sqs
            .list_message_move_tasks()
            .source_arn(&source)
            .max_results(1)
            .send()
            .await
            .map_err(|e| MoveTaskError::Failed(sdk_failed(dlq, e)))?;
        let Some(task) = tasks.results().first() else {
            return Err(MoveTaskError::Failed(failed(dlq, "the move task disappeared")));
        };
        let moved = task.approximate_number_of_messages_moved().max(0) as u64;
        if let Some(bar) = &progress {
            bar.set_length(task.approximate_number_of_messages_to_move().unwrap_or(0).max(0) as u64);
            bar.set_position(moved);
        }
        match task.status() {
            Some("RUNNING") | Some("CANCELLING") | None => {}
            Some("COMPLETED") => {
                if let Some(bar) = progress {
                    bar.finish_and_clear();
                }
                return Ok(moved);
            }
            Some(other) => {
                let why = task.failure_reason().unwrap_or("no reason given");
                return Err(MoveTaskError::Failed(failed(
                    dlq,
                    format!("move task {handle} ended {other} after {moved} message(s): {why}"),
                )));
            }
        }
        tokio::time::sleep(MOVE_TASK_POLL).await;
    }
}

/// How often a running move task's progress is read.
const MOVE_TASK_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// Receive, send to the main queue, delete what was sent: batch by batch.
async fn copy_back(sqs: &Client, dlq: &str, queue: &str) -> Result<u64, CliError> {
    let total = approximate_count(sqs, dlq).await?;
    let progress = (total >= 20 && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} messages moved").expect("valid template"),
        );
        bar
    });
    let moved = copy_back_reporting(sqs, dlq, queue, &|moved| {
        if let Some(bar) = &progress {
            bar.set_position(moved);
        }
    })
    .await?;
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    Ok(moved)
}

/// A dead-lettered message sent back to the main queue as it first came:
/// the reason stays behind, as a redriven message starts afresh.
fn resend_entry(id: String, m: &Message) -> SendMessageBatchRequestEntry {
    let attributes = m.message_attributes().map(|a| {
        a.iter()
            .filter(|(name, _)| name.as_str() != "reason")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<std::collections::HashMap<String, MessageAttributeValue>>()
    });
    SendMessageBatchRequestEntry::builder()
        .id(id)
        .message_body(m.body().unwrap_or_default())
        .set_message_attributes(attributes)
        .build()
        .expect("id and body are set")
}

/// Up to `at_most` dead-lettered messages for a page view, left on the
/// queue: hidden only while read, then made visible again at once. Short
/// polls, since a page is waited on: reading stops at the count SQS reports
/// or after a few empty receives, so a view may show fewer than there are.
pub(crate) async fn peek(sqs: &Client, url: &str, at_most: usize) -> Result<Vec<Message>, CliError> {
    let expected = (approximate_count(sqs, url).await? as usize).min(at_most);
    let mut messages: Vec<Message> = Vec::new();
    let mut empty = 0;
    while messages.len() < expected && empty < PEEK_EMPTY_RECEIVES {
        let batch = receive_waiting(sqs, url, LIST_VISIBILITY_SECS, 0).await?;
        empty = if batch.is_empty() { empty + 1 } else { 0 };
        messages.extend(batch);
    }
    show_again(sqs, url, &messages).await?;
    Ok(messages)
}

/// Empty short polls in a row after which a page view stops reading.
const PEEK_EMPTY_RECEIVES: u32 = 3;

async fn show_again(sqs: &Client, url: &str, messages: &[Message]) -> Result<(), CliError> {
    for chunk in messages.chunks(10) {
        let entries: Vec<ChangeMessageVisibilityBatchRequestEntry> = chunk
            .iter()
            .enumerate()
            .map(|(i, m)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .visibility_timeout(0)
                    .build()
                    .expect("id and receipt handle are set")
            })
            .collect();
        sqs.change_message_visibility_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| sdk_failed(url, e))?;
    }
    Ok(())
}

/// Moves the one dead-lettered message `message_id` back to the main queue;
/// false if the queue, read to the end, does not hold it (moved already).
pub(crate) async fn redrive_one(sqs: &Client, dlq: &str, queue: &str, message_id: &str) -> Result<bool, CliError> {
    let mut passed_over: Vec<Message> = Vec::new();
    let mut ends = EndOfQueue::default();
    let found = loop {
        let batch = receive(sqs, dlq, LIST_VISIBILITY_SECS).await?;
        if batch.is_empty() {
            if ends.reached(approximate_count(sqs, dlq).await?) {
                break None;
            }
            continue;
        }
        ends.reset();
        let (mut matching, others): (Vec<Message>, Vec<Message>) =
            batch.into_iter().partition(|m| m.message_id() == Some(message_id));
        passed_over.extend(others);
        if let Some(m) = matching.pop() {
            passed_over.extend(matching);
            break Some(m);
        }
    };
    show_again(sqs, dlq, &passed_over).await?;
    let Some(message) = found else {
        return Ok(false);
    };
    let sent = sqs
        .send_message_batch()
        .queue_url(queue)
        .entries(resend_entry("0".into(), &message))
        .send()
        .await
        .map_err(|e| sdk_failed(queue, e))?;
    if !sent.failed().is_empty() {
        return Err(failed(queue, "the message could not be sent; it stays on the DLQ"));
    }
    sqs.delete_message()
        .queue_url(dlq)
        .receipt_handle(message.receipt_handle().unwrap_or_default())
        .send()
        .await
        .map_err(|e| sdk_failed(dlq, e))?;
    Ok(true)
}

/// [`copy_back`], calling `moved` with the count after each batch.
pub(crate) async fn copy_back_reporting(
    sqs: &Client,
    dlq: &str,
    queue: &str,
    report: &(dyn Fn(u64) + Send + Sync),
) -> Result<u64, CliError> {
    let mut moved = 0u64;
    let mut ends = EndOfQueue::default();
    loop {
        let batch = receive(sqs, dlq, 60).await?;
        if batch.is_empty() {
            if ends.reached(approximate_count(sqs, dlq).await?) {
                break;
            }
            continue;
        }
        ends.reset();
        let entries: Vec<SendMessageBatchRequestEntry> = batch
            .iter()
            .enumerate()
            .map(|(i, m)| resend_entry(i.to_string(), m))
            .collect();
        let sent = sqs
            .send_message_batch()
            .queue_url(queue)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| sdk_failed(queue, e))?;
        // Delete only what was sent: a failed send stays on the DLQ.
        let sent_ids: Vec<&str> = sent.successful().iter().map(|s| s.id()).collect();
        let deletes = delete_entries(
            batch
                .iter()
                .enumerate()
                .filter(|(i, _)| sent_ids.contains(&i.to_string().as_str()))
                .map(|(_, m)| m),
        );
        if !deletes.is_empty() {
            sqs.delete_message_batch()
                .queue_url(dlq)
                .set_entries(Some(deletes))
                .send()
                .await
                .map_err(|e| sdk_failed(dlq, e))?;
        }
        moved += sent_ids.len() as u64;
        report(moved);
        if !sent.failed().is_empty() {
            return Err(failed(
                queue,
                format!(
                    "{} message(s) could not be sent; they stay on the DLQ",
                    sent.failed().len()
                ),
            ));
        }
    }
    Ok(moved)
}
