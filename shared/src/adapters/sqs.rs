use async_trait::async_trait;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageAttributeValue};
use aws_sdk_sqs::Client;

use super::sdk_port_error;
use crate::domain::envelope::{text_safe, Envelope};
use crate::domain::outputs::KeepRequest;
use crate::ports::{DeadLetters, EnqueueError, EventQueue, OutputRequests, PortError, Redelivery};

/// The most an SQS message may hold, body and attributes together
/// (SendMessage API reference: 1 MiB).
pub const SQS_MAX_MESSAGE_BYTES: usize = 1_048_576;

/// The attribute type the envelope's attributes are sent with.
pub const ATTRIBUTE_TYPE: &str = "String";

/// Why an envelope cannot be sent as one SQS message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqsFitError {
    #[error("envelope takes {bytes} bytes as an SQS message, over the {SQS_MAX_MESSAGE_BYTES}-byte limit")]
    TooLarge { bytes: usize },
    #[error("envelope attribute {0} holds a character SQS refuses")]
    RefusedCharacter(&'static str),
}

/// The envelope's size as SQS counts it: the body plus each attribute's
/// name, type and value.
pub fn sqs_size(envelope: &Envelope) -> usize {
    let attributes: usize = envelope
        .attributes()
        .iter()
        .map(|(name, value)| name.len() + ATTRIBUTE_TYPE.len() + value.len())
        .sum();
    envelope.to_json().len() + attributes
}

/// Checks the envelope can be sent as it is: within the size limit, and with
/// no character SQS refuses (the envelope's JSON never has one; attribute
/// values are checked here).
pub fn fits_sqs(envelope: &Envelope) -> Result<(), SqsFitError> {
    for (name, value) in envelope.attributes() {
        if !value.chars().all(text_safe) {
            return Err(SqsFitError::RefusedCharacter(name));
        }
    }
    match sqs_size(envelope) {
        bytes if bytes > SQS_MAX_MESSAGE_BYTES => Err(SqsFitError::TooLarge { bytes }),
        _ => Ok(()),
    }
}

/// Sends envelopes to one SQS queue.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
}

impl SqsQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }

    /// A cheap call that opens the TLS connection during init and checks the
    /// queue exists, so the first delivery does not pay for the handshake.
    pub async fn warm_up(&self) -> Result<(), PortError> {
        queue_arn(&self.client, &self.queue_url).await.map(|_| ())
    }
}

/// The ARN of the queue at `url`: what policies, rules and move tasks name.
pub async fn queue_arn(client: &Client, url: &str) -> Result<String, PortError> {
    use aws_sdk_sqs::types::QueueAttributeName;
    const OPERATION: &str = "sqs:GetQueueAttributes";
    client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| sdk_port_error(OPERATION, e))?
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .ok_or_else(|| PortError::permanent(OPERATION, format!("queue {url} reported no QueueArn")))
}

/// `DeleteMessageBatch` entries for `messages`; ids are their positions.
pub fn delete_entries<'a>(messages: impl IntoIterator<Item = &'a Message>) -> Vec<DeleteMessageBatchRequestEntry> {
    messages
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .build()
                .expect("id and receipt handle are set")
        })
        .collect()
}

fn string_attribute(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type(ATTRIBUTE_TYPE)
        .string_value(value)
        .build()
        .expect("data_type is set")
}

#[async_trait]
impl EventQueue for SqsQueue {
    async fn enqueue(&self, envelope: &Envelope) -> Result<(), EnqueueError> {
        fits_sqs(envelope).map_err(|e| EnqueueError::Unqueueable(e.to_string()))?;
        let mut send = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(envelope.to_json());
        for (name, value) in envelope.attributes() {
            send = send.message_attributes(name, string_attribute(value));
        }
        send.send()
            .await
            .map(|_| ())
            .map_err(|e| sdk_port_error("sqs:SendMessage", e).into())
    }
}

#[async_trait]
impl DeadLetters for SqsQueue {
    async fn dead_letter(&self, body: &str, reason: &str, source: Option<&str>) -> Result<(), PortError> {
        let mut send = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .message_attributes("reason", string_attribute(reason));
        if let Some(source) = source {
            send = send.message_attributes("source", string_attribute(source));
        }
        send.send()
            .await
            .map(|_| ())
            .map_err(|e| sdk_port_error("sqs:SendMessage", e))
    }
}

#[async_trait]
impl OutputRequests for SqsQueue {
    async fn request(&self, request: &KeepRequest) -> Result<(), PortError> {
        let body =
            serde_json::to_string(request).map_err(|e| PortError::permanent("sqs:SendMessage", e.to_string()))?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .message_attributes("source", string_attribute(&request.source))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| sdk_port_error("sqs:SendMessage", e))
    }
}

#[async_trait]
impl Redelivery for SqsQueue {
    async fn redeliver_in(&self, receipt_handle: &str, delay: std::time::Duration) -> Result<(), PortError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(delay.as_secs().min(43_200) as i32)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| sdk_port_error("sqs:ChangeMessageVisibility", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_accepted_body_of_any_content_fits_one_message() {
        // The receiver's upper bound on JOBHOOK_MAX_BODY_BYTES.
        let n = crate::config::MAX_BODY_BYTES_LIMIT as usize;
        for byte in [b'a', b'"', 0x01, 0xff] {
            let envelope = Envelope::for_test("acme", "msg_1", &vec![byte; n]);
            assert_eq!(fits_sqs(&envelope), Ok(()), "a body of {n} bytes 0x{byte:02x}");
        }
    }

    #[test]
    fn a_body_of_control_characters_costs_base64_not_six_times_its_size() {
        let envelope = Envelope::for_test("acme", "msg_1", &vec![0x01u8; 240_000]);
        assert!(sqs_size(&envelope) < 330_000, "{}", sqs_size(&envelope));
    }

    /// A regression pin: `{}` from source `acme` as `msg_1` is this many bytes
    /// of JSON, plus `source`/`String`/`acme` and `event_id`/`String`/`msg_1`
    /// as SendMessage counts attributes (name, data type and value).
    #[test]
    fn the_size_counts_body_and_attributes_and_the_limit_is_enforced() {
        let mut envelope = Envelope::for_test("acme", "msg_1", b"{}");
        let json = envelope.to_json().len();
        assert_eq!(json, 146, "{}", envelope.to_json());
        assert_eq!(sqs_size(&envelope), 146 + 16 + 19);
        envelope.event_id = "x".repeat(SQS_MAX_MESSAGE_BYTES);
        assert!(matches!(fits_sqs(&envelope), Err(SqsFitError::TooLarge { .. })));
        envelope.event_id = "id\u{FFFF}".into();
        assert_eq!(fits_sqs(&envelope), Err(SqsFitError::RefusedCharacter("event_id")));
    }
}
