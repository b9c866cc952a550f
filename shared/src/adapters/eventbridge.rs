//! Notifications on an EventBridge bus: one event per transition, `source`
//! `jobhook`, `detail-type` `jobhook.transition`, the notification as detail.

use async_trait::async_trait;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;

use super::sdk_port_error;
use crate::domain::notification::Notification;
use crate::ports::{ErrorKind, NotificationBus, PortError};

/// A refused entry is worth retrying unless it can never be accepted as it
/// is (PutEvents API reference, `PutEventsResultEntry.ErrorCode`:
/// `InternalFailure` and `ThrottlingException` are transient).
fn entry_error_kind(code: &str) -> ErrorKind {
    match code {
        "MalformedDetail" | "InvalidArgument" | "ValidationException" => ErrorKind::Permanent,
        c if c.contains("AccessDenied") || c.starts_with("NotAuthorized") => ErrorKind::Systemic,
        _ => ErrorKind::Transient,
    }
}

pub const EVENT_SOURCE: &str = "jobhook";
pub const DETAIL_TYPE: &str = "jobhook.transition";
/// `PutEvents` takes at most ten entries (EventBridge API reference).
pub const MAX_ENTRIES: usize = 10;

#[derive(Debug, Clone)]
pub struct EventBridgeBus {
    client: Client,
    bus: String,
}

impl EventBridgeBus {
    pub fn new(client: Client, bus: impl Into<String>) -> Self {
        Self {
            client,
            bus: bus.into(),
        }
    }

    /// The bus's name.
    pub fn name(&self) -> &str {
        &self.bus
    }
}

#[async_trait]
impl NotificationBus for EventBridgeBus {
    fn max_batch(&self) -> usize {
        MAX_ENTRIES
    }

    async fn publish(&self, batch: &[Notification]) -> Result<Vec<Option<PortError>>, PortError> {
        let entries: Vec<PutEventsRequestEntry> = batch
            .iter()
            .map(|n| {
                PutEventsRequestEntry::builder()
                    .event_bus_name(&self.bus)
                    .source(EVENT_SOURCE)
                    .detail_type(DETAIL_TYPE)
                    .detail(serde_json::to_string(n).expect("a notification serializes"))
                    .resources(format!("jobhook:{}:{}", n.source, n.job_id))
                    .build()
            })
            .collect();
        let out = self
            .client
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| sdk_port_error("events:PutEvents", e))?;
        // A 200 can still refuse some entries: each result says.
        let results = out.entries();
        Ok((0..batch.len())
            .map(|i| {
                let entry = results.get(i)?;
                let code = entry.error_code()?;
                let message = format!("{code}: {}", entry.error_message().unwrap_or("no message"));
                Some(PortError {
                    operation: "events:PutEvents",
                    message,
                    kind: entry_error_kind(code),
                    code: Some(code.to_owned()),
                })
            })
            .collect())
    }
}

/// The id of the target [`route_to_queue`] puts on its rule.
const QUEUE_TARGET_ID: &str = "queue";

/// Routes the bus's notifications (of one source, or all) to a queue: a rule
/// named `rule`, a queue policy that lets only that rule send, and the queue
/// as the rule's target. [`unroute`] takes the rule away again.
pub async fn route_to_queue(
    events: &Client,
    sqs: &aws_sdk_sqs::Client,
    bus: &str,
    rule: &str,
    queue_url: &str,
    source: Option<&str>,
) -> Result<(), PortError> {
    let queue_arn = super::sqs::queue_arn(sqs, queue_url).await?;
    let mut pattern = serde_json::json!({"source": [EVENT_SOURCE], "detail-type": [DETAIL_TYPE]});
    if let Some(source) = source {
        pattern["detail"] = serde_json::json!({ "source": [source] });
    }
    let rule_arn = events
        .put_rule()
        .name(rule)
        .event_bus_name(bus)
        .event_pattern(pattern.to_string())
        .send()
        .await
        .map_err(|e| sdk_port_error("events:PutRule", e))?
        .rule_arn
        .unwrap_or_default();
    let policy = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "events.amazonaws.com"}, "Action": "sqs:SendMessage", "Resource": queue_arn,
        "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}}}]});
    sqs.set_queue_attributes()
        .queue_url(queue_url)
        .attributes(aws_sdk_sqs::types::QueueAttributeName::Policy, policy.to_string())
        .send()
        .await
        .map_err(|e| sdk_port_error("sqs:SetQueueAttributes", e))?;
    let target = aws_sdk_eventbridge::types::Target::builder()
        .id(QUEUE_TARGET_ID)
        .arn(queue_arn)
        .build()
        .map_err(|e| PortError::permanent("events:PutTargets", e.to_string()))?;
    events
        .put_targets()
        .rule(rule)
        .event_bus_name(bus)
        .targets(target)
        .send()
        .await
        .map_err(|e| sdk_port_error("events:PutTargets", e))?;
    Ok(())
}

/// Removes a rule [`route_to_queue`] made, with its target.
pub async fn unroute(events: &Client, bus: &str, rule: &str) -> Result<(), PortError> {
    events
        .remove_targets()
        .rule(rule)
        .event_bus_name(bus)
        .ids(QUEUE_TARGET_ID)
        .send()
        .await
        .map_err(|e| sdk_port_error("events:RemoveTargets", e))?;
    events
        .delete_rule()
        .name(rule)
        .event_bus_name(bus)
        .send()
        .await
        .map_err(|e| sdk_port_error("events:DeleteRule", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_entries_are_retried_unless_they_can_never_be_accepted() {
        assert_eq!(entry_error_kind("InternalFailure"), ErrorKind::Transient);
        assert_eq!(entry_error_kind("ThrottlingException"), ErrorKind::Transient);
        assert_eq!(entry_error_kind("MalformedDetail"), ErrorKind::Permanent);
        assert_eq!(entry_error_kind("AccessDeniedException"), ErrorKind::Systemic);
    }
}
