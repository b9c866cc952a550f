//! `jobhook listen`: the notifications bus, brought to a developer's app.
//! It subscribes a temporary queue to the bus (a rule; both removed on
//! exit) and forwards each notification as a POST signed with Standard
//! Webhooks (`webhook-id` = `transition_id`), or prints it.

use std::io::Write;
use std::time::Duration;

use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use clap::Args;
use jobhook::domain::notification::Notification;
use jobhook::domain::signature::sign;
use jobhook::domain::sources::SigningKey;
use rand::RngExt;
use serde_json::Value;

use crate::{printable, sdk_message, write, CliError};

#[derive(Debug, Args)]
pub struct ListenArgs {
    /// The notifications bus (the stack's `NotificationsBusName` output).
    #[arg(long = "bus", env = "JOBHOOK_EVENT_BUS")]
    pub bus: String,
    /// POST each notification here, signed with Standard Webhooks.
    #[arg(long)]
    pub forward_to: Option<String>,
    /// The signing secret (`whsec_…`); one is generated and printed if not given.
    #[arg(long, env = "JOBHOOK_LISTEN_SECRET")]
    pub secret: Option<String>,
    /// Only this source's notifications.
    #[arg(long)]
    pub source: Option<String>,
    /// Print one JSON object a line instead of text.
    #[arg(long)]
    pub json: bool,
    /// Stop after this many notifications delivered (or printed).
    #[arg(long)]
    pub count: Option<u64>,
}

/// The temporary subscription: removed again whatever happens.
struct Subscription {
    sqs: aws_sdk_sqs::Client,
    events: aws_sdk_eventbridge::Client,
    bus: String,
    name: String,
    queue_url: String,
}

impl Subscription {
    async fn create(aws: &aws_config::SdkConfig, bus: &str, source: Option<&str>) -> Result<Self, CliError> {
        let sqs = aws_sdk_sqs::Client::new(aws);
        let events = aws_sdk_eventbridge::Client::new(aws);
        let name = format!(
            "jobhook-listen-{}-{:08x}",
            std::process::id(),
            rand::rng().random::<u32>()
        );
        let failed = |what: &str, e: String| CliError::Failed(format!("{what} {name}: {e}"));
        let queue_url = sqs
            .create_queue()
            .queue_name(&name)
            .send()
            .await
            .map_err(|e| failed("queue", sdk_message(&e)))?
            .queue_url
            .unwrap_or_default();
        let mut subscription = Self {
            sqs,
            events,
            bus: bus.to_owned(),
            name,
            queue_url,
        };
        if let Err(error) = subscription.subscribe(source).await {
            subscription.remove().await;
            return Err(error);
        }
        Ok(subscription)
    }

    async fn subscribe(&mut self, source: Option<&str>) -> Result<(), CliError> {
        jobhook::adapters::eventbridge::route_to_queue(
            &self.events,
            &self.sqs,
            &self.bus,
            &self.name,
            &self.queue_url,
            source,
        )
        .await
        .map_err(|e| CliError::Failed(format!("subscription {}: {}", self.name, crate::port_message(&e))))
    }

    async fn remove(&self) {
        let _ = jobhook::adapters::eventbridge::unroute(&self.events, &self.bus, &self.name).await;
        let _ = self.sqs.delete_queue().queue_url(&self.queue_url).send().await;
    }
}

/// A fresh Standard Webhooks secret: 32 random bytes.
fn generated_secret() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    format!("whsec_{}", BASE64.encode(bytes))
}

/// The wait before SQS hands a notification back after a failed forward:
/// 1 s doubling per attempt, at most a minute.
fn retry_delay(receive_count: u32) -> i32 {
    let wait = jobhook::domain::schedule::doubling(Duration::from_secs(1), Duration::from_secs(60), receive_count);
    wait.as_secs() as i32
}

pub async fn run(args: ListenArgs, aws: &aws_config::SdkConfig, out: &mut dyn Write) -> Result<(), CliError> {
    let key = match (&args.forward_to, &args.secret) {
        (None, _) => None,
        (Some(_), Some(secret)) => {
            Some(SigningKey::from_whsec(secret).map_err(|problem| CliError::Usage(format!("--secret {problem}")))?)
        }
        (Some(_), None) => {
            let secret = generated_secret();
            eprintln!("jobhook: signing with {secret} (pass it as --secret to keep it)");
            Some(SigningKey::from_whsec(&secret).expect("a generated secret is valid"))
        }
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| CliError::Failed(format!("http client: {e}")))?;
    let subscription = Subscription::create(aws, &args.bus, args.source.as_deref()).await?;
    eprintln!(
        "jobhook: listening on bus {} (temporary queue and rule {}; Ctrl-C removes them)",
        args.bus, subscription.name
    );
    let result = tokio::select! {
        result = listen(&args, &subscription, key.as_ref(), &http, out) => result,
        _ = tokio::signal::ctrl_c() => Ok(()),
    };
    subscription.remove().await;
    eprintln!("jobhook: removed {}", subscription.name);
    result
}

async fn listen(
    args: &ListenArgs,
    subscription: &Subscription,
    key: Option<&SigningKey>,
    http: &reqwest::Client,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let sqs = &subscription.sqs;
    let mut done = 0u64;
    while args.count.is_none_or(|n| done < n) {
        let received = sqs
            .receive_message()
            .queue_url(&subscription.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(10)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| CliError::Failed(format!("queue {}: {}", subscription.name, sdk_message(&e))))?;
        for message in received.messages.unwrap_or_default() {
            if args.count.is_some_and(|n| done >= n) {
                break;
            }
            let delivered = handle(args, key, http, &message, out).await?;
            if delivered {
                done += 1;
                let _ = sqs
                    .delete_message()
                    .queue_url(&subscription.queue_url)
                    .receipt_handle(message.receipt_handle().unwrap_or_default())
                    .send()
                    .await;
            } else {
                let attempts = message
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1);
                let _ = sqs
                    .change_message_visibility()
                    .queue_url(&subscription.queue_url)
                    .receipt_handle(message.receipt_handle().unwrap_or_default())
                    .visibility_timeout(retry_delay(attempts))
                    .send()
                    .await;
            }
        }
    }
    Ok(())
}

/// Forwards or prints one notification; false if the app did not take it.
async fn handle(
    args: &ListenArgs,
    key: Option<&SigningKey>,
    http: &reqwest::Client,
    message: &Message,
    out: &mut dyn Write,
) -> Result<bool, CliError> {
    let event: Value = serde_json::from_str(message.body().unwrap_or_default()).unwrap_or(Value::Null);
    let Ok(notification) = serde_json::from_value::<Notification>(event["detail"].clone()) else {
        write(out, "skipped a message that is not a jobhook notification")?;
        return Ok(true);
    };
    let body = serde_json::to_string(&notification).expect("a notification serializes");
    let summary = format!(
        "{} {} -> {}",
        printable(&notification.transition_id),
        notification.from.map_or("new", |s| s.as_str()),
        notification.to.as_str()
    );
    let (Some(url), Some(key)) = (&args.forward_to, key) else {
        return write(out, &if args.json { body } else { summary }).map(|()| true);
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let signature = sign::standard_webhooks(key, &notification.transition_id, now, body.as_bytes());
    let answer = http
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &notification.transition_id)
        .header("webhook-timestamp", now.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await;
    let (ok, status) = match &answer {
        Ok(r) => (r.status().is_success(), r.status().as_u16().to_string()),
        Err(e) if e.is_connect() => (false, "connection refused".to_owned()),
        Err(_) => (false, "no answer".to_owned()),
    };
    let verdict = if ok { "" } else { " (will retry)" };
    write(out, &format!("{summary}  [{status}]{verdict}"))?;
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_secret_is_a_valid_standard_webhooks_secret_and_each_is_new() {
        let (a, b) = (generated_secret(), generated_secret());
        assert!(a.starts_with("whsec_") && a != b);
        assert_eq!(SigningKey::from_whsec(&a).expect("valid").bytes().len(), 32);
    }

    #[test]
    fn failed_forwards_come_back_sooner_first_then_at_most_a_minute_apart() {
        let waits: Vec<i32> = (1..=9).map(retry_delay).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }
}
