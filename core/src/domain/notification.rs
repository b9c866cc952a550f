//! What the application is told: one notification per applied transition.
//!
//! A notification is derived from two successive images of a job's state
//! item (as the table's stream delivers them), never from the event that
//! caused it: a duplicate, stale or conflicting event changes no transition
//! count, so it can never produce one. `transition_id` is stable across
//! redeliveries (`{source}:{job_id}:{n}`); consumers dedupe on it.
//! The schema is `schemas/notification.v1.json`.

use serde::{Deserialize, Serialize};

use super::job::{JobStatus, Origin};
use super::outputs::{KeepRequest, KeptOutput};

pub const NOTIFICATION_VERSION: u32 = 1;

/// The published contract (`schemas/notification.v1.json`): its own type so
/// that the schema, not the store's layout, decides its shape (`result` is a
/// JSON object here, text in the store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub version: u32,
    pub transition_id: String,
    pub source: String,
    pub job_id: String,
    /// The job's transition count after this one, from 1.
    pub transition: u64,
    /// None when the job was first seen with this transition.
    pub from: Option<JobStatus>,
    pub to: JobStatus,
    pub progress: Option<u8>,
    pub output_url: Option<String>,
    pub error: Option<String>,
    /// What the user needs to fetch the rest of the result (a JSON object).
    pub result: Option<serde_json::Value>,
    pub origin: Origin,
    pub event_id: String,
    /// When jobhook applied it (RFC 3339, UTC, milliseconds).
    pub occurred_at: String,
    /// When the provider says it happened, if it said.
    pub provider_time: Option<String>,
    /// The copies of the job's outputs, once kept: announced by a transition
    /// of its own (origin `keep`), so a completion is never held back by a
    /// copy that takes minutes, or fails.
    pub kept_outputs: Option<Vec<KeptOutput>>,
}

impl Notification {
    /// What the keeper is asked to copy for this transition: a completion
    /// with an output URL whose outputs are not kept yet.
    pub fn keep_request(&self) -> Option<KeepRequest> {
        if self.to != JobStatus::Completed || self.kept_outputs.is_some() || self.origin == Origin::Keep {
            return None;
        }
        Some(KeepRequest {
            source: self.source.clone(),
            job_id: self.job_id.clone(),
            output_url: self.output_url.clone()?,
            transition: self.transition,
            completed_at: self.provider_time.clone().unwrap_or_else(|| self.occurred_at.clone()),
        })
    }
}

/// A job's state item as far as notifications need it: a stream image may
/// lack what a notification requires, so each field is optional here and
/// [`notification_for`] names what is missing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StateImage {
    pub source: String,
    pub job_id: String,
    pub status: Option<JobStatus>,
    pub progress: Option<u8>,
    pub output_url: Option<String>,
    pub error: Option<String>,
    /// JSON object text.
    pub result: Option<String>,
    pub transitions: u64,
    pub last_event_id: Option<String>,
    pub last_origin: Option<Origin>,
    pub updated_at: Option<String>,
    pub provider_time: Option<String>,
    pub kept_outputs: Option<Vec<KeptOutput>>,
}

/// Why a changed state item carries no notification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotificationError {
    #[error("state item for {0} lacks {1}")]
    Incomplete(String, &'static str),
}

/// The notification for the change `old` → `new`, if the change is a
/// transition (the count went up). A bookkeeping write (a poll time, an
/// abandonment) or a redelivered stream record gives none.
pub fn notification_for(old: Option<&StateImage>, new: &StateImage) -> Result<Option<Notification>, NotificationError> {
    let before = old.map_or(0, |o| o.transitions);
    if new.transitions <= before {
        return Ok(None);
    }
    let job = format!("{}/{}", new.source, new.job_id);
    let missing = |field| NotificationError::Incomplete(job.clone(), field);
    Ok(Some(Notification {
        version: NOTIFICATION_VERSION,
        transition_id: format!("{}:{}:{}", new.source, new.job_id, new.transitions),
        source: new.source.clone(),
        job_id: new.job_id.clone(),
        transition: new.transitions,
        from: old.and_then(|o| o.status),
        to: new.status.ok_or_else(|| missing("status"))?,
        progress: new.progress,
        output_url: new.output_url.clone(),
        // The store writes only objects it serialized; anything else is left out.
        result: new
            .result
            .as_deref()
            .and_then(|r| serde_json::from_str::<serde_json::Value>(r).ok())
            .filter(serde_json::Value::is_object),
        error: new.error.clone(),
        origin: new.last_origin.unwrap_or(Origin::Webhook),
        event_id: new.last_event_id.clone().ok_or_else(|| missing("last_event_id"))?,
        occurred_at: new.updated_at.clone().ok_or_else(|| missing("updated_at"))?,
        provider_time: new.provider_time.clone(),
        kept_outputs: new.kept_outputs.clone(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(status: JobStatus, progress: Option<u8>, transitions: u64, event: &str) -> StateImage {
        StateImage {
            source: "acme".into(),
            job_id: "j1".into(),
            status: Some(status),
            progress,
            transitions,
            last_event_id: Some(event.into()),
            last_origin: Some(Origin::Webhook),
            updated_at: Some("2026-05-13T12:00:05.123Z".into()),
            ..StateImage::default()
        }
    }

    #[test]
    fn a_transition_is_notified_with_a_stable_id_and_its_previous_status() {
        let old = image(JobStatus::Processing, Some(40), 2, "e2");
        let new = StateImage {
            output_url: Some("https://cdn.example.com/j1.mp4".into()),
            ..image(JobStatus::Completed, Some(100), 3, "e3")
        };
        let n = notification_for(Some(&old), &new)
            .expect("complete")
            .expect("a transition");
        assert_eq!(n.transition_id, "acme:j1:3");
        assert_eq!(
            (n.from, n.to, n.transition),
            (Some(JobStatus::Processing), JobStatus::Completed, 3)
        );
        assert_eq!(n.event_id, "e3");
        assert_eq!(n.output_url.as_deref(), Some("https://cdn.example.com/j1.mp4"));
        let first = notification_for(None, &image(JobStatus::Processing, None, 1, "e1"))
            .expect("complete")
            .expect("first");
        assert_eq!((first.from, first.transition_id.as_str()), (None, "acme:j1:1"));
    }

    /// The published schema and the type agree: every serialized field is
    /// a property, every property is required and serialized, and each
    /// value has a type the schema allows.
    #[test]
    fn notifications_match_the_published_schema() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../../schemas/notification.v1.json")).expect("schema is JSON");
        let properties = schema["properties"].as_object().expect("properties");
        let required: Vec<&str> = schema["required"]
            .as_array()
            .expect("required")
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        let full = StateImage {
            output_url: Some("https://x".into()),
            kept_outputs: Some(vec![KeptOutput {
                source_url: "https://x".into(),
                s3_uri: "s3://kept/acme/j1/x".into(),
                bytes: 3,
                sha256: "ab".repeat(32),
                content_type: Some("video/mp4".into()),
            }]),
            error: Some("e".into()),
            provider_time: Some("2026-05-13T12:00:00.000Z".into()),
            ..image(JobStatus::Completed, Some(100), 2, "e2")
        };
        let samples = [
            notification_for(None, &image(JobStatus::Processing, None, 1, "e1")),
            notification_for(Some(&image(JobStatus::Processing, None, 1, "e1")), &full),
        ];
        for sample in samples {
            let value = serde_json::to_value(sample.expect("complete").expect("some")).expect("serializes");
            let fields = value.as_object().expect("object");
            let mut names: Vec<&str> = fields.keys().map(String::as_str).collect();
            names.sort_unstable();
            let mut expected = required.clone();
            expected.sort_unstable();
            assert_eq!(names, expected, "fields and the schema's required list");
            for (name, v) in fields {
                let rule = &properties[name];
                let allowed =
                    |t: &str| rule["type"] == t || rule["type"].as_array().is_some_and(|ts| ts.iter().any(|x| x == t));
                let ok = match v {
                    serde_json::Value::Null => {
                        allowed("null") || rule["enum"].as_array().is_some_and(|e| e.contains(v))
                    }
                    serde_json::Value::String(_) => {
                        allowed("string") || rule["enum"].as_array().is_some_and(|e| e.contains(v))
                    }
                    serde_json::Value::Number(_) => allowed("integer") || rule["const"] == *v,
                    serde_json::Value::Array(items) => {
                        allowed("array")
                            && items.iter().all(|item| {
                                let item_rule = &rule["items"];
                                item.as_object().is_some_and(|o| {
                                    item_rule["required"]
                                        .as_array()
                                        .is_some_and(|r| r.iter().all(|k| o.contains_key(k.as_str().unwrap_or(""))))
                                        && o.keys().all(|k| item_rule["properties"].get(k).is_some())
                                })
                            })
                    }
                    _ => false,
                };
                assert!(ok, "{name} = {v} does not fit {rule}");
            }
        }
    }

    #[test]
    fn only_a_completion_with_an_output_not_yet_kept_asks_for_its_outputs_to_be_kept() {
        let old = image(JobStatus::Processing, Some(40), 2, "e2");
        let completed = StateImage {
            output_url: Some("https://cdn.example.com/j1.mp4".into()),
            provider_time: Some("2026-05-13T12:00:04.000Z".into()),
            ..image(JobStatus::Completed, Some(100), 3, "e3")
        };
        let notified = |new: &StateImage| notification_for(Some(&old), new).expect("complete").expect("some");
        let request = notified(&completed).keep_request().expect("a request");
        assert_eq!(
            (
                request.output_url.as_str(),
                request.transition,
                request.completed_at.as_str()
            ),
            ("https://cdn.example.com/j1.mp4", 3, "2026-05-13T12:00:04.000Z"),
            "the provider's end time, which its retention counts from"
        );
        let unstamped = StateImage {
            provider_time: None,
            ..completed.clone()
        };
        assert_eq!(
            notified(&unstamped).keep_request().expect("a request").completed_at,
            "2026-05-13T12:00:05.123Z"
        );
        let no_output = image(JobStatus::Completed, Some(100), 3, "e3");
        assert_eq!(notified(&no_output).keep_request(), None);
        let failed = StateImage {
            output_url: Some("https://cdn.example.com/j1.mp4".into()),
            ..image(JobStatus::Failed, None, 3, "e3")
        };
        assert_eq!(notified(&failed).keep_request(), None);
        let kept = StateImage {
            kept_outputs: Some(Vec::new()),
            last_origin: Some(Origin::Keep),
            transitions: 4,
            ..completed.clone()
        };
        assert_eq!(
            notification_for(Some(&completed), &kept)
                .expect("ok")
                .expect("some")
                .keep_request(),
            None
        );
    }

    #[test]
    fn a_change_that_moves_no_transition_is_not_notified() {
        let state = image(JobStatus::Processing, Some(40), 2, "e2");
        let polled = StateImage {
            updated_at: Some("2026-05-13T12:10:00.000Z".into()),
            ..state.clone()
        };
        assert_eq!(notification_for(Some(&state), &polled), Ok(None), "bookkeeping");
        assert_eq!(notification_for(Some(&state), &state), Ok(None), "a redelivered record");
        let tracked = StateImage {
            status: Some(JobStatus::Submitted),
            transitions: 0,
            ..state
        };
        assert_eq!(
            notification_for(None, &tracked),
            Ok(None),
            "tracking is not a transition"
        );
    }
}
