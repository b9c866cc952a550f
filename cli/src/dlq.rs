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
    },
}

/// While listing, messages are hidden for this long, then made visible again.
const LIST_VISIBILITY_SECS: i32 = 60;

fn failed(queue: &str, error: impl std::fmt::Display) -> CliError {
    CliError::Failed(format!("queue {queue}: {error}"))
}

fn sdk_failed<E: std::error::Error + 'static, R: std::fmt::Debug>(
    queue: &str,
    error: aws_sdk_sqs::error::SdkError<E, R>,
) -> CliError {
    failed(queue, aws_sdk_sqs::error::DisplayErrorContext(error))
}

fn attribute<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
    message.message_attributes()?.get(name)?.string_value()
}

async fn approximate_count(sqs: &Client, url: &str) -> Result<u64, CliError> {
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
    Ok(sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .visibility_timeout(visibility)
        .wait_time_seconds(0)
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
        DlqCommand::Redrive { dlq_url, queue_url } => redrive(&sqs, &dlq_url, &queue_url, out).await,
    }
}

async fn list(sqs: &Client, url: &str, json: bool, out: &mut dyn Write) -> Result<(), CliError> {
    let mut messages = Vec::new();
    loop {
        let batch = receive(sqs, url, LIST_VISIBILITY_SECS).await?;
        if batch.is_empty() {
            break;
        }
        messages.extend(batch);
    }
    // Make them visible again right away: listing must not hide them.
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

async fn redrive(sqs: &Client, dlq: &str, queue: &str, out: &mut dyn Write) -> Result<(), CliError> {
    let total = approximate_count(sqs, dlq).await?;
    let progress = (total >= 20 && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} messages moved").expect("valid template"),
        );
        bar
    });
    let mut moved = 0u64;
    loop {
        let batch = receive(sqs, dlq, 60).await?;
        if batch.is_empty() {
            break;
        }
        let entries: Vec<SendMessageBatchRequestEntry> = batch
            .iter()
            .enumerate()
            .map(|(i, m)| {
                // The reason stays behind: a redriven message starts afresh.
                let attributes = m.message_attributes().map(|a| {
                    a.iter()
                        .filter(|(name, _)| name.as_str() != "reason")
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect::<std::collections::HashMap<String, MessageAttributeValue>>()
                });
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(m.body().unwrap_or_default())
                    .set_message_attributes(attributes)
                    .build()
                    .expect("id and body are set")
            })
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
        if let Some(bar) = &progress {
            bar.set_position(moved);
        }
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
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    write(
        out,
        &format!("moved {moved} message(s) from the dead-letter queue back to {queue}"),
    )
}
