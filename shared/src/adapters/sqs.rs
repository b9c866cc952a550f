use async_trait::async_trait;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageAttributeValue};
use aws_sdk_sqs::Client;

use super::sdk_port_error;
use crate::domain::envelope::{Envelope, ATTRIBUTE_TYPE};
use crate::ports::{DeadLetters, EventQueue, PortError};

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

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// A cheap call that opens the TLS connection during init and checks the
    /// queue exists, so the first delivery does not pay for the handshake.
    pub async fn warm_up(&self) -> Result<(), PortError> {
        self.client
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| sdk_port_error("sqs:GetQueueAttributes", e))
    }
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
    async fn enqueue(&self, envelope: &Envelope) -> Result<(), PortError> {
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
            .map_err(|e| sdk_port_error("sqs:SendMessage", e))
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
