//! Notifications on an EventBridge bus: one event per transition, `source`
//! `jobhook`, `detail-type` `jobhook.transition`, the notification as detail.

use async_trait::async_trait;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;

use super::sdk_port_error;
use crate::ports::ErrorKind;

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
use crate::domain::notification::Notification;
use crate::ports::{NotificationBus, PortError};

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
                })
            })
            .collect())
    }
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
