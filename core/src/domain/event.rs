//! From a queued delivery to a job event.

use super::digest::sha256_hex;
use super::envelope::Envelope;
use super::job::{JobEvent, Origin};
use super::provider::{PayloadError, ProviderProfile};

/// A delivery understood as a job event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    pub event: JobEvent,
    /// A thin event: its state must be read from the provider's API (see
    /// [`crate::domain::provider::thin_event_with_state`]) before it is applied.
    pub fetch: bool,
}

/// Parses the envelope's body with `profile`. The event's identity (the
/// dedupe key) is the delivery's `webhook-id` when it carried one, else the
/// body's own `id`, else the SHA-256 of the body.
pub fn job_event_from_envelope(
    envelope: &Envelope,
    profile: &dyn ProviderProfile,
) -> Result<WebhookEvent, PayloadError> {
    let body = envelope.body_bytes().map_err(|e| PayloadError(e.to_string()))?;
    job_event_from_body(envelope, &body, profile)
}

/// As [`job_event_from_envelope`], with the envelope's body already decoded.
pub fn job_event_from_body(
    envelope: &Envelope,
    body: &[u8],
    profile: &dyn ProviderProfile,
) -> Result<WebhookEvent, PayloadError> {
    job_event_from_delivery(&envelope.source, envelope.webhook_id.as_deref(), body, profile)
}

/// A delivery of `source` as a job event: what the processor does with a
/// queued one and `jobhook replay` with an archived one.
pub fn job_event_from_delivery(
    source: &str,
    webhook_id: Option<&str>,
    body: &[u8],
    profile: &dyn ProviderProfile,
) -> Result<WebhookEvent, PayloadError> {
    let payload = profile.parse_webhook(body)?;
    let event_id = webhook_id
        .map(str::to_owned)
        .or(payload.id)
        .unwrap_or_else(|| sha256_hex(body));
    Ok(WebhookEvent {
        event: JobEvent {
            event_id,
            source: source.to_owned(),
            job_id: payload.job_id,
            kind: payload.kind,
            origin: Origin::Webhook,
            status: payload.status,
            progress: payload.progress,
            output_url: payload.output_url,
            error: payload.error,
            result: payload.result,
            provider_time: payload.provider_time,
            archive: None,
        },
        fetch: payload.fetch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::provider::Generic;

    fn envelope(webhook_id: Option<&str>, body: &str) -> Envelope {
        Envelope {
            v: 1,
            source: "acme".into(),
            event_id: "ignored".into(),
            received_at: "2026-05-13T12:00:05Z".into(),
            scheme: "standard-webhooks".into(),
            webhook_id: webhook_id.map(Into::into),
            signed_at: None,
            headers: Default::default(),
            body: body.into(),
            body_base64: false,
        }
    }

    #[test]
    fn identity_prefers_webhook_id_then_body_id_then_hash() {
        let with_id = r#"{"id":"evt_9","type":"job.started","data":{"job_id":"j"}}"#;
        let without_id = r#"{"type":"job.started","data":{"job_id":"j"}}"#;
        let e = job_event_from_envelope(&envelope(Some("msg_1"), with_id), &Generic)
            .expect("event")
            .event;
        assert_eq!(e.event_id, "msg_1");
        let e = job_event_from_envelope(&envelope(None, with_id), &Generic)
            .expect("event")
            .event;
        assert_eq!(e.event_id, "evt_9");
        let e = job_event_from_envelope(&envelope(None, without_id), &Generic)
            .expect("event")
            .event;
        assert_eq!(e.event_id, sha256_hex(without_id.as_bytes()));
        assert_eq!((e.source.as_str(), e.job_id.as_str()), ("acme", "j"));
    }
}
