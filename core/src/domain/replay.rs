//! Re-deriving a job from its archive through the current profile code: the
//! repair for a profile that read a field wrongly. The same rules as the
//! store's apply (dedupe by event id, then [`decide`]) fold the archived
//! records, in the order they were received, into the state they give now.

use std::collections::HashSet;

use super::archive::{ArchiveRecord, RecordKind};
use super::event::job_event_from_delivery;
use super::job::{decide, Decision, JobEvent, JobFields, JobState, Origin};
use super::provider::{job_event_from_poll, thin_event_with_state, ProviderProfile};

/// What one archived record gives under the current profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reading {
    Event(Box<JobEvent>),
    /// Not a job event now, or one of another job: it moves nothing.
    Ignored(String),
}

/// The state a job's archive gives, and what each record said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derivation {
    /// The event whose fields the job ends with; None if no record applies.
    pub winner: Option<JobEvent>,
    pub readings: Vec<(String, Reading)>,
}

impl Derivation {
    pub fn fields(&self) -> Option<JobFields> {
        self.winner.as_ref().map(JobFields::from_event)
    }

    /// What `stored` must become, if the archive says otherwise: the event
    /// a correction applies (origin `replay`, the next transition's id).
    pub fn correction(&self, stored: &JobState) -> Option<JobEvent> {
        let winner = self.winner.as_ref()?;
        if JobFields::from_event(winner) == stored.fields {
            return None;
        }
        Some(JobEvent {
            event_id: format!("replay-{}", stored.transitions + 1),
            kind: "replay".into(),
            origin: Origin::Replay,
            archive: None,
            ..winner.clone()
        })
    }
}

/// Reads one record of `source`'s job `job_id` with `profile`.
pub fn read(record: &ArchiveRecord, job_id: &str, profile: &dyn ProviderProfile) -> Reading {
    match record.kind {
        RecordKind::Poll => match &record.answer {
            Some(answer) => Reading::Event(Box::new(job_event_from_poll(
                &record.source,
                job_id,
                &answer.poll_answer(),
            ))),
            None => Reading::Ignored("a poll record without its answer".into()),
        },
        RecordKind::Delivery => {
            if let Some(reason) = profile.not_a_job_event(&record.body) {
                return Reading::Ignored(reason);
            }
            let parsed =
                match job_event_from_delivery(&record.source, record.webhook_id.as_deref(), &record.body, profile) {
                    Ok(parsed) => parsed,
                    Err(e) => return Reading::Ignored(format!("{} payload: {e}", profile.name())),
                };
            if parsed.event.job_id != job_id {
                return Reading::Ignored(format!("it now reads as a delivery for job {:?}", parsed.event.job_id));
            }
            if !parsed.fetch {
                return Reading::Event(Box::new(parsed.event));
            }
            match record
                .answer
                .as_ref()
                .map(|a| thin_event_with_state(&parsed.event, &a.poll_answer()))
            {
                Some(Some(event)) => Reading::Event(Box::new(event)),
                Some(None) => Reading::Ignored("the archived answer is behind what the delivery announced".into()),
                None => Reading::Ignored("a thin delivery archived without the answer its fetch got".into()),
            }
        }
    }
}

/// Folds `records`, oldest first, as the store would have applied them.
pub fn derive(records: &[ArchiveRecord], job_id: &str, profile: &dyn ProviderProfile) -> Derivation {
    let mut winner: Option<JobEvent> = None;
    let mut seen = HashSet::new();
    let mut readings = Vec::with_capacity(records.len());
    for record in records {
        let reading = read(record, job_id, profile);
        if let Reading::Event(event) = &reading {
            let current = winner.as_ref().map(|w| (w.status, JobFields::from_event(w).progress));
            if seen.insert(event.event_id.clone()) && decide(current, event) == Decision::Apply {
                winner = Some((**event).clone());
            }
        }
        let label = match &reading {
            Reading::Event(event) => event.event_id.clone(),
            Reading::Ignored(_) => record.webhook_id.clone().unwrap_or_else(|| record.received_at.clone()),
        };
        readings.push((label, reading));
    }
    Derivation { winner, readings }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::archive::RecordKind;
    use crate::domain::job::JobStatus;
    use crate::domain::provider::{fixture, profile, PollAnswer};

    fn delivery(body: Vec<u8>) -> ArchiveRecord {
        ArchiveRecord {
            kind: RecordKind::Delivery,
            source: "rep".into(),
            received_at: "2026-05-13T12:00:05Z".into(),
            scheme: Some("standard-webhooks".into()),
            verification: Some("verified".into()),
            webhook_id: None,
            signed_at: None,
            headers: Default::default(),
            body,
            answer: None,
        }
    }

    fn stored(fields: JobFields, transitions: u64) -> JobState {
        JobState {
            source: "rep".into(),
            job_id: "j".into(),
            fields,
            first_seen: String::new(),
            updated_at: String::new(),
            provider_time: None,
            transitions,
            last_event_id: None,
            terminal_origin: None,
            abandoned_at: None,
            kept_outputs: None,
            outputs_lost: None,
        }
    }

    #[test]
    fn replicate_s_documented_deliveries_derive_its_final_state_in_any_order() {
        let replicate = profile("replicate").expect("profile");
        let starting = delivery(fixture("replicate", "webhook-starting.json"));
        let succeeded = delivery(fixture("replicate", "webhook-succeeded.json"));
        let job_id = replicate.parse_webhook(&succeeded.body).expect("documented").job_id;
        for records in [
            [starting.clone(), succeeded.clone()],
            [succeeded.clone(), starting.clone()],
        ] {
            let derivation = derive(&records, &job_id, replicate);
            let fields = derivation.fields().expect("a state");
            assert_eq!(fields.status, JobStatus::Completed);
            assert!(
                fields.result.as_deref().is_some_and(|r| r.contains("hello Alice")),
                "{fields:?}"
            );
        }
    }

    #[test]
    fn a_stored_state_the_archive_disagrees_with_gets_one_correction_and_an_agreeing_one_none() {
        let generic = profile("generic").expect("profile");
        let body = br#"{"id":"e1","type":"job.completed","data":{"job_id":"j","status":"completed","output_url":"https://cdn/right.mp4"}}"#;
        let derivation = derive(&[delivery(body.to_vec())], "j", generic);
        let right = derivation.fields().expect("a state");
        let wrong = JobFields {
            output_url: Some("https://cdn/wrong.mp4".into()),
            ..right.clone()
        };
        let correction = derivation.correction(&stored(wrong, 3)).expect("a correction");
        assert_eq!(
            (
                correction.event_id.as_str(),
                correction.origin,
                correction.output_url.as_deref()
            ),
            ("replay-4", Origin::Replay, Some("https://cdn/right.mp4"))
        );
        assert_eq!(
            derivation.correction(&stored(right, 4)),
            None,
            "nothing to correct the second time"
        );
    }

    #[test]
    fn a_thin_delivery_takes_its_archived_answer_and_a_poll_record_its_own() {
        let openai = profile("openai").expect("profile");
        let thin = delivery(fixture("openai", "webhook-batch-completed.json"));
        let job_id = openai.parse_webhook(&thin.body).expect("documented").job_id;
        assert!(
            matches!(read(&thin, &job_id, openai), Reading::Ignored(_)),
            "no answer, no state"
        );
        let answer = PollAnswer {
            output_url: Some("https://files/out.jsonl".into()),
            ..PollAnswer::bare(JobStatus::Completed, None)
        };
        let Reading::Event(event) = read(&thin.with_answer(&answer), &job_id, openai) else {
            panic!("an event")
        };
        assert_eq!(event.output_url.as_deref(), Some("https://files/out.jsonl"));
        let poll = ArchiveRecord::of_poll(
            "rep",
            "2026-05-13T12:00:05Z".into(),
            &PollAnswer::bare(JobStatus::Processing, Some(40)),
        );
        let Reading::Event(event) = read(&poll, "j", openai) else {
            panic!("an event")
        };
        assert_eq!((event.origin, event.progress), (Origin::Poll, Some(40)));
    }

    #[test]
    fn a_record_that_no_longer_parses_or_names_another_job_moves_nothing() {
        let generic = profile("generic").expect("profile");
        let other = br#"{"id":"e1","type":"job.completed","data":{"job_id":"other","status":"completed"}}"#;
        let derivation = derive(
            &[delivery(b"not json".to_vec()), delivery(other.to_vec())],
            "j",
            generic,
        );
        assert_eq!(derivation.winner, None);
        assert!(derivation
            .readings
            .iter()
            .all(|(_, r)| matches!(r, Reading::Ignored(_))));
    }
}
