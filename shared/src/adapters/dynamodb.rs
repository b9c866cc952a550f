//! Job state in one DynamoDB table.
//!
//! | item | `pk` | `sk` |
//! |---|---|---|
//! | job state | `JOB#{source}#{job_id}` | `STATE` |
//! | timeline entry | `JOB#{source}#{job_id}` | `EVT#{event_id}` |
//! | a source's rate limit | `SOURCE#{source}` | `RATE_LIMIT` |
//!
//! A non-terminal job also carries `open_pk = OPEN#{source}` and
//! `next_poll_at` (epoch ms): the sparse `open-jobs` index the reconciler
//! takes due jobs from. Every applied event sets `next_poll_at` to
//! `stale_after` from now; a poll that changes nothing pushes it back
//! (`poll_misses` counts those in a row). Both index attributes are removed
//! when the job ends or is abandoned.
//!
//! **Apply protocol** (no reads; one write request per event unless the
//! store's memory of the job is missing or out of date):
//! 1. The store keeps, per container, the state it last saw of each job it
//!    wrote (a bounded LRU). States only move forward, so that is a lower
//!    bound of the job's state, and it says whether the event will apply.
//! 2. If it may (or the job is not remembered), one `TransactWriteItems`: the
//!    state update, conditioned on the event moving the job forward from
//!    whatever state it is in (or the job not being stored), and the timeline
//!    put (`applied`), conditioned on the event id being new. Atomic, so no
//!    crash can leave one without the other.
//! 3. If the store saw the job past the event, one `TransactWriteItems`: a
//!    condition check that the state still makes the event stale (or
//!    conflicting), and the timeline put recording it so. A wrong memory
//!    costs one more request, never a wrong outcome.
//! 4. If the timeline condition failed, the event was seen before: duplicate.
//!    If only the state condition failed, the cancellation carries the current
//!    state (`ReturnValuesOnConditionCheckFailure=ALL_OLD`), and the event
//!    goes to step 2 or 3 from it.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, ConditionCheck, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
    Update,
};
use aws_sdk_dynamodb::Client;
use lru::LruCache;
use time::OffsetDateTime;

use super::sdk_port_error;
use crate::clock::{rfc3339, unix_ms, Clock};
use crate::domain::archive::{ArchiveLocation, SegmentRef};
use crate::domain::job::{
    decide, ApplyResult, Decision, JobEvent, JobFields, JobState, JobStatus, Origin, Outcome, TimelineEntry,
};
use crate::domain::listing::{JobSummary, Position, SourceRead};
use crate::domain::notification::StateImage;
use crate::domain::outputs::KeptOutput;
use crate::domain::stored::{Transition, ABANDONED_KIND, NOT_FOUND_KIND};
use crate::domain::stored::{ABANDONED_EVENT_ID, NOT_FOUND_EVENT_ID};
use crate::ports::{
    JobActivity, JobQuery, JobStore, JobsPage, OpenCounts, OpenJob, OpenJobIndex, PortError, KEPT_OUTPUTS_EVENT_ID,
};

pub const OPEN_JOBS_INDEX: &str = "open-jobs";
/// Every job state by source and latest activity (`updated_at`): the
/// console's lists and overview.
pub const ACTIVITY_INDEX: &str = "jobs-by-activity";
pub const STATE_SK: &str = "STATE";
pub const EVENT_SK_PREFIX: &str = "EVT#";
pub const TTL_ATTRIBUTE: &str = "expires_at";
/// A timeline entry's archived record, compressed, when it is small.
pub const ARCHIVE_ATTRIBUTE: &str = "archive";
/// Where a larger record is kept (`s3://bucket/key#offset+len`).
pub const ARCHIVE_REF_ATTRIBUTE: &str = "archive_ref";

type Item = HashMap<String, AttributeValue>;
/// A job's status and progress: all the apply rule reads of its state.
type StatusAt = (JobStatus, Option<u8>);

pub fn job_pk(source: &str, job_id: &str) -> String {
    format!("JOB#{source}#{job_id}")
}

pub fn open_pk(source: &str) -> String {
    format!("OPEN#{source}")
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name).and_then(|v| v.as_s().ok()).map(String::as_str)
}

fn get_n<T: std::str::FromStr>(item: &Item, name: &str) -> Option<T> {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok())
}

fn status_of(item: &Item) -> Option<StatusAt> {
    let status = get_s(item, "status")?.parse().ok()?;
    Some((status, get_n(item, "progress")))
}

/// The state condition under which an event with these fields moves a job
/// forward: [`crate::domain::job::moves_forward`] as an expression on `#rank`,
/// `#status` and `#progress` (an absent job fails it). It declares `:rank`,
/// and, for progress, `:processing` and `:progress`.
fn forward_condition(status: JobStatus, progress: Option<u8>, values: &mut Item) -> String {
    values.insert(":rank".into(), n(status.rank()));
    let mut forward = "#rank < :rank".to_owned();
    if let (JobStatus::Processing, Some(progress)) = (status, progress) {
        values.insert(":processing".into(), s(JobStatus::Processing.as_str()));
        values.insert(":progress".into(), n(progress));
        forward.push_str(" OR (#status = :processing AND (attribute_not_exists(#progress) OR #progress < :progress))");
    }
    format!("({forward})")
}

/// The state condition under which `event` is `decision` (stale or
/// conflicting) against the job as stored, `seen` being the status the store
/// last saw: [`decide`] as an expression.
fn unapplied_condition(event: &JobEvent, decision: Decision, seen: JobStatus) -> (String, Item) {
    let mut values = Item::new();
    let condition = match decision {
        // Two ends: the one stored is the one seen (an end never changes).
        Decision::Conflict => {
            values.insert(":seen".into(), s(seen.as_str()));
            "#status = :seen".to_owned()
        }
        // An end is stale only against the same end.
        Decision::Stale if event.status.is_terminal() => {
            values.insert(":status".into(), s(event.status.as_str()));
            "#status = :status".to_owned()
        }
        Decision::Stale | Decision::Apply => format!(
            "attribute_exists(#pk) AND NOT {}",
            forward_condition(event.status, event.progress, &mut values)
        ),
    };
    (condition, values)
}

/// The conditional state update and its expression, mirroring
/// [`crate::domain::job::moves_forward`] from any previous status.
struct StateUpdate {
    update: String,
    condition: String,
    names: HashMap<String, String>,
    values: Item,
}

/// What a state update is conditioned on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Guard {
    /// An apply: the job is not stored yet, or the event moves it forward.
    Forward,
    /// A replay's correction: the job has exactly this many transitions, so
    /// nothing was applied since the archive was read.
    Transitions(u64),
}

/// `transition` as one conditional update, guarded by `guard`.
fn state_update(event: &JobEvent, transition: &Transition, guard: Guard, now: &str, now_ms: i64) -> StateUpdate {
    let fields = transition.fields.clone();
    let mut names: HashMap<String, String> = [
        "pk",
        "status",
        "rank",
        "source",
        "job_id",
        "progress",
        "output_url",
        "error",
        "result",
        "provider_time",
        "first_seen",
        "updated_at",
        "transitions",
        "last_event_id",
        "open_pk",
        "last_activity",
        "next_poll_at",
        "poll_misses",
        "abandoned_at",
        "terminal_origin",
        "last_origin",
        "kept_outputs",
        "outputs_lost",
    ]
    .into_iter()
    .map(|a| (format!("#{a}"), a.to_owned()))
    .collect();
    let mut values: Item = [
        (":status", s(fields.status.as_str())),
        (":rank", n(fields.status.rank())),
        (":source", s(&event.source)),
        (":job_id", s(&event.job_id)),
        (":now", s(now)),
        (":event_id", s(&event.event_id)),
        (":one", n(1)),
        (":zero", n(0)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();

    let mut set = vec![
        "#status = :status",
        "#rank = :rank",
        "#source = :source",
        "#job_id = :job_id",
        "#updated_at = :now",
        "#first_seen = if_not_exists(#first_seen, :now)",
        "#transitions = if_not_exists(#transitions, :zero) + :one",
        "#last_event_id = :event_id",
    ];
    let mut remove = Vec::new();
    let optional = [
        ("progress", fields.progress.map(n)),
        ("output_url", fields.output_url.map(s)),
        ("error", fields.error.map(s)),
        ("result", fields.result.map(s)),
        ("provider_time", event.provider_time.map(|t| s(rfc3339(t)))),
    ];
    let mut optional_sets = Vec::new();
    for (attr, value) in optional {
        match value {
            Some(v) => {
                values.insert(format!(":{attr}"), v);
                optional_sets.push(format!("#{attr} = :{attr}"));
            }
            None => remove.push(format!("#{attr}")),
        }
    }
    // An applied event reopens a job the reconciler had abandoned.
    remove.extend(["#poll_misses".to_owned(), "#abandoned_at".to_owned()]);
    // What brought the transition, for the notification the stream carries.
    values.insert(":origin".into(), s(transition.origin.as_str()));
    set.push("#last_origin = :origin");
    match (transition.terminal_origin, guard) {
        (Some(origin), Guard::Forward) => {
            values.insert(":terminal_origin".into(), s(origin.as_str()));
            set.push("#terminal_origin = :terminal_origin");
        }
        // A correction of an ended job keeps who ended it first.
        (Some(origin), Guard::Transitions(_)) => {
            values.insert(":terminal_origin".into(), s(origin.as_str()));
            set.push("#terminal_origin = if_not_exists(#terminal_origin, :terminal_origin)");
        }
        (None, Guard::Transitions(_)) => remove.push("#terminal_origin".to_owned()),
        (None, Guard::Forward) => {}
    }
    // The corrected job's outputs are kept again, as it says them now (an
    // apply never moves a completed job, so it leaves them).
    if matches!(guard, Guard::Transitions(_)) {
        remove.extend(["#kept_outputs".to_owned(), "#outputs_lost".to_owned()]);
    }
    match transition.next_poll_at_ms {
        None => remove.extend(["#open_pk", "#last_activity", "#next_poll_at"].map(str::to_owned)),
        Some(due_ms) => {
            values.insert(":open_pk".into(), s(open_pk(&event.source)));
            values.insert(":now_ms".into(), n(now_ms));
            values.insert(":due".into(), n(due_ms));
            set.extend([
                "#open_pk = :open_pk",
                "#last_activity = :now_ms",
                "#next_poll_at = :due",
            ]);
        }
    }
    let mut update = format!(
        "SET {}",
        set.into_iter()
            .map(str::to_owned)
            .chain(optional_sets)
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !remove.is_empty() {
        update.push_str(&format!(" REMOVE {}", remove.join(", ")));
    }

    // One condition for every previous state, so that the first write applies
    // whatever the job's state; the stream's old image says which it was.
    let condition = match guard {
        Guard::Transitions(expected) => {
            values.insert(":expected_transitions".into(), n(expected));
            "attribute_exists(#pk) AND #transitions = :expected_transitions".to_owned()
        }
        Guard::Forward => format!(
            "attribute_not_exists(#pk) OR {}",
            forward_condition(fields.status, fields.progress, &mut values)
        ),
    };
    // Only names the expressions use may be declared.
    names.retain(|placeholder, _| update.contains(placeholder.as_str()) || condition.contains(placeholder.as_str()));
    StateUpdate {
        update,
        condition,
        names,
        values,
    }
}

/// DynamoDB-backed [`JobStore`].
#[derive(Debug, Clone)]
pub struct DynamoJobStore {
    client: Client,
    table: String,
    event_ttl: Duration,
    clock: Arc<dyn Clock>,
    stale_after: Duration,
    /// The state this store last saw of each job it wrote, by `pk`: which
    /// write an event needs, since a job only moves forward.
    seen: Arc<Mutex<LruCache<String, StatusAt>>>,
}

impl DynamoJobStore {
    pub fn new(client: Client, table: impl Into<String>, event_ttl: Duration, clock: Arc<dyn Clock>) -> Self {
        Self {
            client,
            table: table.into(),
            event_ttl,
            clock,
            stale_after: crate::domain::schedule::DEFAULT_STALE_AFTER,
            seen: Arc::new(Mutex::new(LruCache::new(
                NonZeroUsize::new(REMEMBERED_JOBS).expect("not zero"),
            ))),
        }
    }

    /// An open job is due for a poll this long after its last applied event.
    pub fn with_stale_after(mut self, stale_after: Duration) -> Self {
        self.stale_after = stale_after;
        self
    }

    fn due_after_activity(&self, now: OffsetDateTime) -> i64 {
        crate::domain::stored::due_after_activity(unix_ms(now), self.stale_after)
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn timeline_item(&self, event: &JobEvent, outcome: Outcome, now: &str, now_unix: i64) -> Item {
        let mut item: Item = [
            ("pk", s(job_pk(&event.source, &event.job_id))),
            ("sk", s(format!("{EVENT_SK_PREFIX}{}", event.event_id))),
            ("event_id", s(&event.event_id)),
            ("outcome", s(outcome.as_str())),
            ("kind", s(&event.kind)),
            ("origin", s(event.origin.as_str())),
            ("status", s(event.status.as_str())),
            ("received_at", s(now)),
            (TTL_ATTRIBUTE, n(now_unix + self.event_ttl.as_secs() as i64)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        if let Some(p) = event.progress {
            item.insert("progress".into(), n(p));
        }
        if let Some(t) = event.provider_time.map(rfc3339) {
            item.insert("provider_time".into(), s(t));
        }
        match &event.archive {
            Some(ArchiveLocation::Inline(bytes)) => {
                item.insert(ARCHIVE_ATTRIBUTE.into(), AttributeValue::B(Blob::new(bytes.clone())));
            }
            Some(ArchiveLocation::Segment(at)) => {
                item.insert(ARCHIVE_REF_ATTRIBUTE.into(), s(at.to_uri()));
            }
            None => {}
        }
        item
    }

    fn timeline_put(&self, item: Item) -> Put {
        Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(sk)")
            .build()
            .expect("table, item and condition are set")
    }
}

#[async_trait]
impl JobQuery for DynamoJobStore {
    /// The job's state (a strongly consistent read).
    async fn get(&self, source: &str, job_id: &str) -> Result<Option<JobState>, PortError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(job_pk(source, job_id)))
            .key("sk", s(STATE_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_port_error("dynamodb:GetItem", e))?;
        Ok(out.item.and_then(StateItem::from_item).map(StateItem::job_state))
    }

    /// Every distinct event received for the job, oldest first.
    async fn timeline(&self, source: &str, job_id: &str) -> Result<Vec<TimelineEntry>, PortError> {
        let mut entries = Vec::new();
        let mut start_key = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", s(job_pk(source, job_id)))
                .expression_attribute_values(":prefix", s(EVENT_SK_PREFIX))
                .consistent_read(true)
                .set_exclusive_start_key(start_key)
                .send()
                .await
                .map_err(|e| sdk_port_error("dynamodb:Query", e))?;
            entries.extend(out.items().iter().filter_map(timeline_entry_from_item));
            start_key = out.last_evaluated_key;
            if start_key.is_none() {
                break;
            }
        }
        entries.sort_by(|a, b| {
            a.received_at
                .cmp(&b.received_at)
                .then_with(|| a.event_id.cmp(&b.event_id))
        });
        Ok(entries)
    }

    /// A Scan of the table filtered to `source`'s state items: a bulk tool's
    /// read, never the functions'. The cursor is where the Scan stopped
    /// (`pk` and `sk`, which may be any item's), so a page may be empty.
    async fn jobs_of(&self, source: &str, cursor: Option<&str>) -> Result<JobsPage, PortError> {
        let start = match cursor {
            None => None,
            Some(cursor) => {
                let (pk, sk) = cursor.split_once('\n').ok_or_else(|| {
                    PortError::permanent("dynamodb:Scan", "the resume point is not one this tool wrote")
                })?;
                Some(HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))]))
            }
        };
        let out = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("sk = :state AND #source = :source")
            .expression_attribute_names("#source", "source")
            .expression_attribute_values(":state", s(STATE_SK))
            .expression_attribute_values(":source", s(source))
            .set_exclusive_start_key(start)
            .limit(200)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_port_error("dynamodb:Scan", e))?;
        let jobs = out
            .items()
            .iter()
            .filter_map(|item| StateItem::from_item(item.clone()))
            .map(StateItem::job_state)
            .collect();
        let next = out
            .last_evaluated_key
            .and_then(|key| Some(format!("{}\n{}", get_s(&key, "pk")?, get_s(&key, "sk")?)));
        Ok(JobsPage { jobs, next })
    }
}

/// The job state item as the table holds it, mapped once (serde_dynamo) for
/// the SDK's items, the stream's images and the dev tools. Only the keys the
/// apply path always writes are required; a tracked job has no event yet.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StateItem {
    pub pk: String,
    pub sk: String,
    pub source: String,
    pub job_id: String,
    pub status: JobStatus,
    pub rank: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// JSON object text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_time: Option<String>,
    #[serde(default)]
    pub first_seen: String,
    #[serde(default)]
    pub updated_at: String,
    #[serde(default)]
    pub transitions: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_origin: Option<Origin>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminal_origin: Option<Origin>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abandoned_at: Option<String>,
    /// The open-jobs index: set while the job is open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_poll_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_activity: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_misses: Option<u32>,
    /// A list of maps: where the job's outputs were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_outputs: Option<Vec<KeptOutput>>,
    /// Why the outputs were not kept (the keeper).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs_lost: Option<String>,
}

impl StateItem {
    /// The state item `item` holds; None for any other item (a timeline entry,
    /// a rate limit) or one that does not read as a state item.
    pub fn from_item<I>(item: I) -> Option<Self>
    where
        I: Into<serde_dynamo::Item>,
    {
        let item: serde_dynamo::Item = item.into();
        match item.get("sk") {
            Some(serde_dynamo::AttributeValue::S(sk)) if sk == STATE_SK => serde_dynamo::from_item(item).ok(),
            _ => None,
        }
    }

    pub fn job_state(self) -> JobState {
        JobState {
            source: self.source,
            job_id: self.job_id,
            fields: JobFields {
                status: self.status,
                progress: self.progress,
                output_url: self.output_url,
                error: self.error,
                result: self.result,
            },
            first_seen: self.first_seen,
            updated_at: self.updated_at,
            provider_time: self.provider_time,
            transitions: self.transitions,
            last_event_id: self.last_event_id,
            terminal_origin: self.terminal_origin,
            abandoned_at: self.abandoned_at,
            kept_outputs: self.kept_outputs,
            outputs_lost: self.outputs_lost,
        }
    }

    pub fn state_image(self) -> StateImage {
        StateImage {
            source: self.source,
            job_id: self.job_id,
            status: Some(self.status),
            progress: self.progress,
            output_url: self.output_url,
            error: self.error,
            result: self.result,
            transitions: self.transitions,
            last_event_id: self.last_event_id,
            last_origin: self.last_origin,
            updated_at: Some(self.updated_at).filter(|t| !t.is_empty()),
            provider_time: self.provider_time,
            kept_outputs: self.kept_outputs,
        }
    }

    /// The job as the open-jobs index lists it; None once it left the index.
    pub fn open_job(self) -> Option<OpenJob> {
        Some(OpenJob {
            first_seen_ms: OffsetDateTime::parse(&self.first_seen, &time::format_description::well_known::Rfc3339)
                .ok()
                .map(unix_ms),
            next_poll_at_ms: self.next_poll_at?,
            poll_misses: self.poll_misses.unwrap_or(0),
            source: self.source,
            job_id: self.job_id,
            status: self.status,
        })
    }
}

/// A state item as a stream record's image carries it, for notifications.
/// None for any other item (a timeline entry, a rate limit) or an empty image.
pub fn state_image_from_stream(image: &serde_dynamo::Item) -> Option<StateImage> {
    StateItem::from_item(image.clone()).map(StateItem::state_image)
}

fn timeline_entry_from_item(item: &Item) -> Option<TimelineEntry> {
    Some(TimelineEntry {
        event_id: get_s(item, "event_id")?.to_owned(),
        outcome: get_s(item, "outcome")?.parse().ok()?,
        kind: get_s(item, "kind").unwrap_or_default().to_owned(),
        origin: get_s(item, "origin")
            .and_then(|o| o.parse().ok())
            .unwrap_or(Origin::Webhook),
        status: get_s(item, "status").and_then(|v| v.parse().ok()),
        progress: get_n(item, "progress"),
        received_at: get_s(item, "received_at").unwrap_or_default().to_owned(),
        provider_time: get_s(item, "provider_time").map(str::to_owned),
        repeats: get_n(item, "repeats"),
        last_received_at: get_s(item, "last_received_at").map(str::to_owned),
        archive: archive_of(item),
    })
}

fn archive_of(item: &Item) -> Option<ArchiveLocation> {
    if let Some(AttributeValue::B(bytes)) = item.get(ARCHIVE_ATTRIBUTE) {
        return Some(ArchiveLocation::Inline(bytes.as_ref().to_vec()));
    }
    get_s(item, ARCHIVE_REF_ATTRIBUTE)
        .and_then(SegmentRef::parse)
        .map(ArchiveLocation::Segment)
}

const CONDITIONAL_CHECK_FAILED: &str = "ConditionalCheckFailed";
/// Cancellation reasons that no retry can clear (TransactWriteItems API
/// reference, `CancellationReason`).
const PERMANENT_CANCELLATION_CODES: &[&str] = &["ValidationError", "ItemCollectionSizeLimitExceeded"];

pub const RATE_LIMIT_SK: &str = "RATE_LIMIT";

pub fn source_pk(source: &str) -> String {
    format!("SOURCE#{source}")
}

/// Names for every attribute an expression uses: several are reserved words.
fn names(attributes: &[&str]) -> HashMap<String, String> {
    attributes.iter().map(|a| (format!("#{a}"), (*a).to_owned())).collect()
}

/// What the activity index projects beside its keys (`source`,
/// `updated_at`) and the table's (`pk`, `sk`): everything [`ActivityItem`]
/// reads. The template's `NonKeyAttributes` are held to this list by a test,
/// and this list to the item by another.
pub const ACTIVITY_PROJECTION: &[&str] = &[
    "job_id",
    "status",
    "progress",
    "first_seen",
    "transitions",
    "terminal_origin",
    "abandoned_at",
    "next_poll_at",
    "outputs_lost",
];

/// A job's entry in the activity index: what it projects.
#[derive(Debug, serde::Deserialize)]
struct ActivityItem {
    source: String,
    job_id: String,
    status: JobStatus,
    #[serde(default)]
    progress: Option<u8>,
    #[serde(default)]
    first_seen: String,
    updated_at: String,
    #[serde(default)]
    transitions: u64,
    #[serde(default)]
    terminal_origin: Option<Origin>,
    #[serde(default)]
    abandoned_at: Option<String>,
    #[serde(default)]
    next_poll_at: Option<i64>,
    #[serde(default)]
    outputs_lost: Option<String>,
}

impl From<ActivityItem> for JobSummary {
    fn from(item: ActivityItem) -> Self {
        Self {
            source: item.source,
            job_id: item.job_id,
            status: item.status,
            progress: item.progress,
            first_seen: item.first_seen,
            updated_at: item.updated_at,
            transitions: item.transitions,
            terminal_origin: item.terminal_origin,
            abandoned_at: item.abandoned_at,
            next_poll_at: item.next_poll_at,
            outputs_lost: item.outputs_lost,
        }
    }
}

impl DynamoJobStore {
    /// `update` on the job's state if it is still completed with
    /// `output_url` and has no outputs kept: the keeper's one condition
    /// (`InMemoryJobStore` restates it; the differential test holds them
    /// together). False if it is not.
    async fn update_if_keepable<const N: usize>(
        &self,
        source: &str,
        job_id: &str,
        output_url: &str,
        update: &str,
        attributes: &[&str],
        values: [(&str, AttributeValue); N],
    ) -> Result<bool, PortError> {
        let mut expression_names = names(attributes);
        expression_names.extend(names(&["status", "output_url", "kept_outputs"]));
        let mut expression_values: Item = values.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        expression_values.insert(":completed".into(), s(JobStatus::Completed.as_str()));
        expression_values.insert(":url".into(), s(output_url));
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(job_pk(source, job_id)))
            .key("sk", s(STATE_SK))
            .update_expression(update)
            .condition_expression("#status = :completed AND #output_url = :url AND attribute_not_exists(#kept_outputs)")
            .set_expression_attribute_names(Some(expression_names))
            .set_expression_attribute_values(Some(expression_values))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => Ok(false),
            Err(e) => Err(sdk_port_error("dynamodb:UpdateItem", e)),
        }
    }
}

#[async_trait]
impl JobActivity for DynamoJobStore {
    async fn recent(
        &self,
        source: &str,
        below: Option<&Position>,
        since: Option<&str>,
        limit: usize,
    ) -> Result<SourceRead, PortError> {
        // Entries at `below`'s own instant are read again and dropped here
        // unless they sort below it (ties are rare at millisecond precision).
        let range = match (below, since) {
            (Some(_), Some(_)) => " AND #updated_at BETWEEN :since AND :below",
            (Some(_), None) => " AND #updated_at <= :below",
            (None, Some(_)) => " AND #updated_at >= :since",
            (None, None) => "",
        };
        let mut values: Item = HashMap::from([(":source".to_owned(), s(source))]);
        if let Some(below) = below {
            values.insert(":below".into(), s(&below.updated_at));
        }
        if let Some(since) = since {
            values.insert(":since".into(), s(since));
        }
        let mut jobs: Vec<JobSummary> = Vec::new();
        let mut start_key = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(ACTIVITY_INDEX)
                .key_condition_expression(format!("#source = :source{range}"))
                .set_expression_attribute_names(Some(names(if range.is_empty() {
                    &["source"]
                } else {
                    &["source", "updated_at"]
                })))
                .set_expression_attribute_values(Some(values.clone()))
                .scan_index_forward(false)
                .limit((limit - jobs.len()).clamp(1, 1000) as i32)
                .set_exclusive_start_key(start_key)
                .send()
                .await
                .map_err(|e| sdk_port_error("dynamodb:Query", e))?;
            jobs.extend(
                out.items()
                    .iter()
                    .filter_map(|item| serde_dynamo::from_item::<_, ActivityItem>(item.clone()).ok())
                    .map(JobSummary::from)
                    .filter(|job| below.is_none_or(|b| job.position() < *b)),
            );
            start_key = out.last_evaluated_key;
            // The index orders by time alone; ties are put in list order here.
            jobs.sort_by_key(|job| std::cmp::Reverse(job.position()));
            if start_key.is_none() {
                return Ok(SourceRead { jobs, stopped_at: None });
            }
            if jobs.len() >= limit {
                jobs.truncate(limit);
                let stopped_at = jobs.last().map(JobSummary::position);
                return Ok(SourceRead { jobs, stopped_at });
            }
        }
    }

    /// One pass over the source's open jobs, reading only their due times
    /// (a COUNT would read the same items, and two would read them twice).
    async fn open_counts(&self, source: &str, overdue_before_ms: i64) -> Result<OpenCounts, PortError> {
        let mut counts = OpenCounts::default();
        let mut start_key = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(OPEN_JOBS_INDEX)
                .key_condition_expression("open_pk = :open")
                .expression_attribute_values(":open", s(open_pk(source)))
                .projection_expression("next_poll_at")
                .set_exclusive_start_key(start_key)
                .send()
                .await
                .map_err(|e| sdk_port_error("dynamodb:Query", e))?;
            for item in out.items() {
                counts.open += 1;
                counts.overdue +=
                    u64::from(get_n::<i64>(item, "next_poll_at").is_some_and(|due| due < overdue_before_ms));
            }
            start_key = out.last_evaluated_key;
            if start_key.is_none() {
                return Ok(counts);
            }
        }
    }
}

#[async_trait]
impl OpenJobIndex for DynamoJobStore {
    async fn due_open_jobs(&self, source: &str, now_ms: i64, limit: usize) -> Result<Vec<OpenJob>, PortError> {
        let mut jobs = Vec::new();
        let mut start_key = None;
        while jobs.len() < limit {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(OPEN_JOBS_INDEX)
                .key_condition_expression("open_pk = :open AND next_poll_at <= :now")
                .expression_attribute_values(":open", s(open_pk(source)))
                .expression_attribute_values(":now", n(now_ms))
                .limit((limit - jobs.len()).min(1000) as i32)
                .set_exclusive_start_key(start_key)
                .send()
                .await
                .map_err(|e| sdk_port_error("dynamodb:Query", e))?;
            jobs.extend(
                out.items()
                    .iter()
                    .filter_map(|item| StateItem::from_item(item.clone()))
                    .filter_map(StateItem::open_job),
            );
            start_key = out.last_evaluated_key;
            if start_key.is_none() {
                break;
            }
        }
        jobs.truncate(limit);
        Ok(jobs)
    }

    async fn reschedule(&self, job: &OpenJob, next_poll_at_ms: i64, misses: u32) -> Result<(), PortError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(job_pk(&job.source, &job.job_id)))
            .key("sk", s(STATE_SK))
            .update_expression("SET #next_poll_at = :next, #poll_misses = :misses, #last_polled_at = :now")
            // Only if no event moved the job (and its due time) meanwhile.
            .condition_expression("attribute_exists(#open_pk) AND #next_poll_at = :due")
            .set_expression_attribute_names(Some(names(&[
                "next_poll_at",
                "poll_misses",
                "last_polled_at",
                "open_pk",
            ])))
            .expression_attribute_values(":next", n(next_poll_at_ms))
            .expression_attribute_values(":misses", n(misses))
            .expression_attribute_values(":now", n(unix_ms(self.clock.now())))
            .expression_attribute_values(":due", n(job.next_poll_at_ms))
            .send()
            .await;
        match result {
            // The job ended or moved meanwhile: its new schedule stands.
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => Ok(()),
            other => other.map(|_| ()).map_err(|e| sdk_port_error("dynamodb:UpdateItem", e)),
        }
    }

    /// One `not_found` entry per job however often the provider says 404,
    /// so a job it never knew cannot grow the timeline at every poll.
    async fn record_not_found(&self, source: &str, job_id: &str) -> Result<u32, PortError> {
        let now = self.clock.now();
        let expires = now.unix_timestamp() + self.event_ttl.as_secs() as i64;
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(job_pk(source, job_id)))
            .key("sk", s(format!("{EVENT_SK_PREFIX}{NOT_FOUND_EVENT_ID}")))
            .update_expression(
                "SET #event_id = :id, #outcome = :outcome, #kind = :kind, #origin = :origin, \
                 #received_at = if_not_exists(#received_at, :now), #last_received_at = :now, #ttl = :expires \
                 ADD #repeats :one",
            )
            .set_expression_attribute_names(Some(
                names(&[
                    "event_id",
                    "outcome",
                    "kind",
                    "origin",
                    "received_at",
                    "last_received_at",
                    "repeats",
                ])
                .into_iter()
                .chain([("#ttl".to_owned(), TTL_ATTRIBUTE.to_owned())])
                .collect(),
            ))
            .expression_attribute_values(":id", s(NOT_FOUND_EVENT_ID))
            .expression_attribute_values(":outcome", s(Outcome::NotFound.as_str()))
            .expression_attribute_values(":kind", s(NOT_FOUND_KIND))
            .expression_attribute_values(":origin", s(Origin::Poll.as_str()))
            .expression_attribute_values(":now", s(rfc3339(now)))
            .expression_attribute_values(":expires", n(expires))
            .expression_attribute_values(":one", n(1))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| sdk_port_error("dynamodb:UpdateItem", e))?;
        Ok(out.attributes.as_ref().and_then(|a| get_n(a, "repeats")).unwrap_or(1))
    }

    async fn abandon(&self, job: &OpenJob, reason: &str) -> Result<bool, PortError> {
        let now = self.clock.now();
        let now_text = rfc3339(now);
        let state = Update::builder()
            .table_name(&self.table)
            .key("pk", s(job_pk(&job.source, &job.job_id)))
            .key("sk", s(STATE_SK))
            .update_expression("SET #abandoned_at = :now REMOVE #open_pk, #next_poll_at, #last_activity, #poll_misses")
            .condition_expression("attribute_exists(#open_pk) AND #next_poll_at = :due")
            .set_expression_attribute_names(Some(names(&[
                "abandoned_at",
                "open_pk",
                "next_poll_at",
                "last_activity",
                "poll_misses",
            ])))
            .expression_attribute_values(":now", s(&now_text))
            .expression_attribute_values(":due", n(job.next_poll_at_ms))
            .build()
            .expect("table, key and expression are set");
        let entry: Item = [
            ("pk", s(job_pk(&job.source, &job.job_id))),
            ("sk", s(format!("{EVENT_SK_PREFIX}{ABANDONED_EVENT_ID}"))),
            ("event_id", s(ABANDONED_EVENT_ID)),
            ("outcome", s(Outcome::Abandoned.as_str())),
            ("kind", s(ABANDONED_KIND)),
            ("origin", s(Origin::Poll.as_str())),
            ("status", s(job.status.as_str())),
            ("received_at", s(&now_text)),
            ("reason", s(reason)),
            (TTL_ATTRIBUTE, n(now.unix_timestamp() + self.event_ttl.as_secs() as i64)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let timeline = Put::builder()
            .table_name(&self.table)
            .set_item(Some(entry))
            .build()
            .expect("table and item are set");
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(state).build())
            .transact_items(TransactWriteItem::builder().put(timeline).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(ctx)) => match ctx.err() {
                TransactWriteItemsError::TransactionCanceledException(cancelled)
                    if cancelled.cancellation_reasons().first().and_then(|r| r.code())
                        == Some(CONDITIONAL_CHECK_FAILED) =>
                {
                    Ok(false)
                }
                _ => Err(sdk_port_error(
                    "dynamodb:TransactWriteItems",
                    SdkError::ServiceError(ctx),
                )),
            },
            Err(e) => Err(sdk_port_error("dynamodb:TransactWriteItems", e)),
        }
    }

    async fn rate_limited_until(&self, source: &str) -> Result<Option<i64>, PortError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(source_pk(source)))
            .key("sk", s(RATE_LIMIT_SK))
            .send()
            .await
            .map_err(|e| sdk_port_error("dynamodb:GetItem", e))?;
        Ok(out.item.as_ref().and_then(|item| get_n(item, "until_ms")))
    }

    async fn record_rate_limit(&self, source: &str, until_ms: i64) -> Result<(), PortError> {
        let item: Item = [
            ("pk", s(source_pk(source))),
            ("sk", s(RATE_LIMIT_SK)),
            ("until_ms", n(until_ms)),
            // Kept a day past the time it names, then expired.
            (TTL_ATTRIBUTE, n(until_ms / 1000 + 86_400)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| sdk_port_error("dynamodb:PutItem", e))
    }
}

/// What one apply request writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// The state update and the `applied` timeline entry.
    Forward,
    /// The timeline entry of an event that does not apply, with a check that
    /// the job is still where the store saw it (`seen`) in that respect.
    Unapplied(Decision, JobStatus),
}

/// The plan for `event` against what the store last saw of its job.
fn plan_for(seen: Option<StatusAt>, event: &JobEvent) -> Plan {
    match (seen, decide(seen, event)) {
        (Some((status, _)), decision @ (Decision::Stale | Decision::Conflict)) => Plan::Unapplied(decision, status),
        _ => Plan::Forward,
    }
}

/// How one conditional transaction ended.
enum Attempt {
    Written,
    /// The event id was already in the timeline.
    Duplicate(Option<StatusAt>),
    /// The state condition failed; this is the state that failed it.
    Refused(Option<StatusAt>),
}

/// The IAM actions an apply's transactions are authorized as (AWS checks a
/// transaction item by item): every function that applies events needs them.
pub const APPLY_ACTIONS: &[&str] = &["dynamodb:UpdateItem", "dynamodb:PutItem", "dynamodb:ConditionCheckItem"];

/// A stale memory of the job, then a lost race per further attempt.
const MAX_APPLY_ATTEMPTS: u32 = 4;

/// Jobs whose last seen state one store remembers: about 100 bytes each.
const REMEMBERED_JOBS: usize = 4096;

impl DynamoJobStore {
    /// A transition's transaction: the state update `guard` conditions, and
    /// the `applied` timeline put conditioned on the event id being new.
    fn transition_items(&self, event: &JobEvent, guard: Guard, now: OffsetDateTime) -> [TransactWriteItem; 2] {
        let now_text = rfc3339(now);
        let StateUpdate {
            update,
            condition,
            names,
            values,
        } = state_update(
            event,
            &Transition::of(event, unix_ms(now), self.stale_after),
            guard,
            &now_text,
            unix_ms(now),
        );
        let state = Update::builder()
            .table_name(&self.table)
            .key("pk", s(job_pk(&event.source, &event.job_id)))
            .key("sk", s(STATE_SK))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .expect("table, key and expression are set");
        let timeline = self.timeline_item(event, Outcome::Applied, &now_text, now.unix_timestamp());
        [
            TransactWriteItem::builder().update(state).build(),
            TransactWriteItem::builder().put(self.timeline_put(timeline)).build(),
        ]
    }

    /// The transaction recording an event that does not apply: a check that
    /// the state still makes it `decision`, and its timeline put.
    fn unapplied_items(
        &self,
        event: &JobEvent,
        decision: Decision,
        seen: JobStatus,
        now: OffsetDateTime,
    ) -> [TransactWriteItem; 2] {
        let (condition, values) = unapplied_condition(event, decision, seen);
        let mut names = names(&["pk", "rank", "status", "progress"]);
        names.retain(|placeholder, _| condition.contains(placeholder.as_str()));
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .key("pk", s(job_pk(&event.source, &event.job_id)))
            .key("sk", s(STATE_SK))
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .expect("table, key and condition are set");
        let timeline = self.timeline_item(event, decision.into(), &rfc3339(now), now.unix_timestamp());
        [
            TransactWriteItem::builder().condition_check(check).build(),
            TransactWriteItem::builder().put(self.timeline_put(timeline)).build(),
        ]
    }

    /// The items of `plan`'s transaction: the state item's write or check,
    /// then the timeline put.
    fn apply_items(&self, event: &JobEvent, plan: Plan, now: OffsetDateTime) -> [TransactWriteItem; 2] {
        match plan {
            Plan::Forward => self.transition_items(event, Guard::Forward, now),
            Plan::Unapplied(decision, seen) => self.unapplied_items(event, decision, seen, now),
        }
    }

    /// One `TransactWriteItems`: None once written; otherwise why it was
    /// cancelled.
    async fn transact(&self, items: [TransactWriteItem; 2]) -> Result<Option<Vec<CancellationReason>>, PortError> {
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items.into()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(None),
            Err(SdkError::ServiceError(ctx)) => match ctx.err() {
                TransactWriteItemsError::TransactionCanceledException(cancelled) => {
                    Ok(Some(cancelled.cancellation_reasons().to_vec()))
                }
                _ => Err(sdk_port_error(
                    "dynamodb:TransactWriteItems",
                    SdkError::ServiceError(ctx),
                )),
            },
            Err(e) => Err(sdk_port_error("dynamodb:TransactWriteItems", e)),
        }
    }

    /// One apply attempt as `plan` says.
    async fn try_apply(&self, event: &JobEvent, plan: Plan, now: OffsetDateTime) -> Result<Attempt, PortError> {
        let written = self.transact(self.apply_items(event, plan, now)).await?;
        let Some(reasons) = written else {
            return Ok(Attempt::Written);
        };
        let failed = |i: usize| reasons.get(i).and_then(|r| r.code()) == Some(CONDITIONAL_CHECK_FAILED);
        let current = reasons.first().and_then(|r| r.item()).and_then(status_of);
        if failed(1) {
            Ok(Attempt::Duplicate(current))
        } else if failed(0) {
            Ok(Attempt::Refused(current))
        } else {
            Err(cancelled(&reasons))
        }
    }

    fn seen(&self, pk: &str) -> Option<StatusAt> {
        self.seen.lock().expect("seen lock").get(pk).copied()
    }

    fn remember(&self, pk: &str, state: Option<StatusAt>) {
        let mut seen = self.seen.lock().expect("seen lock");
        match state {
            Some(state) => {
                seen.put(pk.to_owned(), state);
            }
            None => {
                seen.pop(pk);
            }
        }
    }
}

/// A transaction cancelled for a reason other than its conditions: nothing
/// was written. A concurrent transaction on the item (`TransactionConflict`),
/// throttling or a 500 clear up, so a retry is safe; a request DynamoDB
/// refuses (`ValidationError`, an item collection over its size) never will.
fn cancelled(reasons: &[CancellationReason]) -> PortError {
    let codes: Vec<&str> = reasons.iter().filter_map(|r| r.code()).collect();
    let message = format!("transaction cancelled: {codes:?}");
    if codes.iter().any(|c| PERMANENT_CANCELLATION_CODES.contains(c)) {
        PortError::permanent("dynamodb:TransactWriteItems", message)
    } else {
        PortError::transient("dynamodb:TransactWriteItems", message)
    }
}

#[async_trait]
impl JobStore for DynamoJobStore {
    async fn track(&self, source: &str, job_id: &str) -> Result<bool, PortError> {
        let now = self.clock.now();
        let now_text = rfc3339(now);
        let state = StateItem {
            pk: job_pk(source, job_id),
            sk: STATE_SK.to_owned(),
            source: source.to_owned(),
            job_id: job_id.to_owned(),
            status: JobStatus::Submitted,
            rank: JobStatus::Submitted.rank(),
            progress: None,
            output_url: None,
            error: None,
            result: None,
            provider_time: None,
            first_seen: now_text.clone(),
            updated_at: now_text,
            transitions: 0,
            last_event_id: None,
            last_origin: None,
            terminal_origin: None,
            abandoned_at: None,
            open_pk: Some(open_pk(source)),
            next_poll_at: Some(self.due_after_activity(now)),
            last_activity: Some(unix_ms(now)),
            poll_misses: None,
            kept_outputs: None,
            outputs_lost: None,
        };
        let item: Item =
            serde_dynamo::to_item(state).map_err(|e| PortError::permanent("dynamodb:PutItem", e.to_string()))?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => Ok(false),
            Err(e) => Err(sdk_port_error("dynamodb:PutItem", e)),
        }
    }

    async fn correct(&self, event: &JobEvent, expected_transitions: u64) -> Result<bool, PortError> {
        let guard = Guard::Transitions(expected_transitions);
        // A correction may move a job anywhere: forget what was seen of it.
        self.remember(&job_pk(&event.source, &event.job_id), None);
        match self
            .transact(self.transition_items(event, guard, self.clock.now()))
            .await?
        {
            None => Ok(true),
            // The job moved since it was read, or this replay ran already.
            Some(reasons) if reasons.iter().any(|r| r.code() == Some(CONDITIONAL_CHECK_FAILED)) => Ok(false),
            Some(reasons) => Err(cancelled(&reasons)),
        }
    }

    async fn record_kept_outputs(
        &self,
        source: &str,
        job_id: &str,
        output_url: &str,
        kept: &[KeptOutput],
    ) -> Result<bool, PortError> {
        let kept = serde_dynamo::to_attribute_value(kept)
            .map_err(|e| PortError::permanent("dynamodb:UpdateItem", e.to_string()))?;
        self.update_if_keepable(
            source,
            job_id,
            output_url,
            "SET #kept_outputs = :kept, #transitions = #transitions + :one, #last_event_id = :event_id, \
             #last_origin = :keep, #updated_at = :now",
            &["transitions", "last_event_id", "last_origin", "updated_at"],
            [
                (":kept", kept),
                (":one", n(1)),
                (":event_id", s(KEPT_OUTPUTS_EVENT_ID)),
                (":keep", s(Origin::Keep.as_str())),
                (":now", s(rfc3339(self.clock.now()))),
            ],
        )
        .await
    }

    async fn record_outputs_lost(
        &self,
        source: &str,
        job_id: &str,
        output_url: &str,
        why: &str,
    ) -> Result<bool, PortError> {
        self.update_if_keepable(
            source,
            job_id,
            output_url,
            "SET #outputs_lost = :why",
            &["outputs_lost"],
            [(":why", s(why))],
        )
        .await
    }

    async fn has_event(&self, source: &str, job_id: &str, event_id: &str) -> Result<bool, PortError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(job_pk(source, job_id)))
            .key("sk", s(format!("{EVENT_SK_PREFIX}{event_id}")))
            .projection_expression("pk")
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_port_error("dynamodb:GetItem", e))?;
        Ok(out.item.is_some())
    }

    async fn apply(&self, event: &JobEvent) -> Result<ApplyResult, PortError> {
        let now = self.clock.now();
        let pk = job_pk(&event.source, &event.job_id);
        let mut plan = plan_for(self.seen(&pk), event);
        let mut write_requests = 0;
        loop {
            write_requests += 1;
            let current = match self.try_apply(event, plan, now).await? {
                Attempt::Written => {
                    return Ok(match plan {
                        Plan::Forward => {
                            let after = Transition::of(event, unix_ms(now), self.stale_after).fields;
                            self.remember(&pk, Some((after.status, after.progress)));
                            ApplyResult {
                                outcome: Outcome::Applied,
                                // The condition held for every earlier state.
                                from: None,
                                to: Some(event.status),
                                write_requests,
                            }
                        }
                        Plan::Unapplied(decision, seen) => ApplyResult {
                            outcome: decision.into(),
                            // At least this far along: the check held.
                            from: Some(seen),
                            to: Some(seen),
                            write_requests,
                        },
                    });
                }
                Attempt::Duplicate(current) => {
                    if current.is_some() {
                        self.remember(&pk, current);
                    }
                    let status = current.map(|(s, _)| s);
                    return Ok(ApplyResult {
                        outcome: Outcome::Duplicate,
                        from: status,
                        to: status,
                        write_requests,
                    });
                }
                Attempt::Refused(current) => current,
            };
            // The job is not where the store remembered it (another container
            // or a replay moved it), or another event landed first: plan again
            // from the state the condition saw.
            self.remember(&pk, current);
            if write_requests >= MAX_APPLY_ATTEMPTS {
                return Err(PortError::transient(
                    "dynamodb:TransactWriteItems",
                    "job state kept changing concurrently",
                ));
            }
            plan = plan_for(current, event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::job::Origin;
    use std::collections::BTreeSet;

    /// A summary read from the index's projection of a state item is the
    /// summary of the whole item: the projection holds every field it reads.
    #[test]
    fn the_activity_index_projects_every_field_a_job_summary_reads() {
        let state = StateItem {
            pk: job_pk("acme", "j1"),
            sk: STATE_SK.into(),
            source: "acme".into(),
            job_id: "j1".into(),
            status: JobStatus::Processing,
            rank: JobStatus::Processing.rank(),
            progress: Some(40),
            output_url: Some("https://cdn.example/o".into()),
            error: Some("e".into()),
            result: Some("{}".into()),
            provider_time: Some("2026-01-01T00:00:00.000Z".into()),
            first_seen: "2026-01-01T00:00:00.000Z".into(),
            updated_at: "2026-01-01T00:00:01.000Z".into(),
            transitions: 3,
            last_event_id: Some("e3".into()),
            last_origin: Some(Origin::Poll),
            terminal_origin: Some(Origin::Poll),
            abandoned_at: Some("2026-01-01T00:00:02.000Z".into()),
            open_pk: Some(open_pk("acme")),
            next_poll_at: Some(9),
            last_activity: Some(8),
            poll_misses: Some(1),
            kept_outputs: None,
            outputs_lost: Some("gone".into()),
        };
        let whole: Item = serde_dynamo::to_item(state).expect("serializes");
        let keys = ["pk", "sk", "source", "updated_at"];
        let projected: Item = whole
            .iter()
            .filter(|(k, _)| keys.contains(&k.as_str()) || ACTIVITY_PROJECTION.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let read =
            |item: &Item| JobSummary::from(serde_dynamo::from_item::<_, ActivityItem>(item.clone()).expect("reads"));
        assert_eq!(read(&projected), read(&whole));
        for attribute in ACTIVITY_PROJECTION {
            assert!(
                whole.contains_key(*attribute),
                "{attribute} is a state item's attribute"
            );
        }
    }

    fn event(status: JobStatus, progress: Option<u8>) -> JobEvent {
        JobEvent {
            event_id: "e1".into(),
            source: "acme".into(),
            job_id: "j1".into(),
            kind: "job.progress".into(),
            origin: Origin::Webhook,
            status,
            progress,
            output_url: (status == JobStatus::Completed).then(|| "https://cdn.example/j1.mp4".into()),
            error: None,
            result: None,
            provider_time: None,
            archive: None,
        }
    }

    fn update_for(event: &JobEvent) -> StateUpdate {
        let transition = Transition::of(event, 1_000, Duration::from_secs(600));
        state_update(event, &transition, Guard::Forward, "2026-05-13T12:00:05.123Z", 1_000)
    }

    fn placeholders(update: &StateUpdate) -> BTreeSet<&str> {
        update.names.keys().map(String::as_str).collect()
    }

    /// The expressions as DynamoDB receives them, for a progress event: the
    /// write moves the job only forward, from whatever state it is in.
    #[test]
    fn a_progress_event_sets_its_fields_stays_open_and_moves_only_forward() {
        let update = update_for(&event(JobStatus::Processing, Some(40)));
        assert_eq!(
            update.update,
            "SET #status = :status, #rank = :rank, #source = :source, #job_id = :job_id, #updated_at = :now, \
             #first_seen = if_not_exists(#first_seen, :now), #transitions = if_not_exists(#transitions, :zero) + :one, \
             #last_event_id = :event_id, #last_origin = :origin, #open_pk = :open_pk, #last_activity = :now_ms, \
             #next_poll_at = :due, #progress = :progress \
             REMOVE #output_url, #error, #result, #provider_time, #poll_misses, #abandoned_at"
        );
        assert_eq!(
            update.condition,
            "attribute_not_exists(#pk) OR (#rank < :rank OR (#status = :processing AND \
             (attribute_not_exists(#progress) OR #progress < :progress)))"
        );
        assert_eq!(update.values[":due"], n(601_000));
        assert_eq!(update.values[":progress"], n(40));
        assert!(
            !placeholders(&update).contains("#terminal_origin"),
            "declared only where used"
        );
    }

    /// An event that ends the job: written only if the job is new or not
    /// ended, it leaves the open-jobs index and records who got there first.
    #[test]
    fn an_ending_event_records_its_origin_and_leaves_the_index() {
        let update = update_for(&event(JobStatus::Completed, None));
        assert_eq!(
            update.update,
            "SET #status = :status, #rank = :rank, #source = :source, #job_id = :job_id, #updated_at = :now, \
             #first_seen = if_not_exists(#first_seen, :now), #transitions = if_not_exists(#transitions, :zero) + :one, \
             #last_event_id = :event_id, #last_origin = :origin, #terminal_origin = :terminal_origin, \
             #progress = :progress, #output_url = :output_url \
             REMOVE #error, #result, #provider_time, #poll_misses, #abandoned_at, #open_pk, #last_activity, #next_poll_at"
        );
        assert_eq!(update.condition, "attribute_not_exists(#pk) OR (#rank < :rank)");
        assert_eq!(update.values[":progress"], n(100), "a completed job is at 100%");
        assert!(!update.values.contains_key(":due"));
        // Every placeholder used is declared, and no other (DynamoDB refuses both).
        let used: BTreeSet<&str> = update
            .update
            .split(|c: char| !(c == '#' || c == '_' || c.is_ascii_alphanumeric()))
            .chain(
                update
                    .condition
                    .split(|c: char| !(c == '#' || c == '_' || c.is_ascii_alphanumeric())),
            )
            .filter(|w| w.starts_with('#'))
            .collect();
        assert_eq!(placeholders(&update), used);
    }

    /// What records an event that does not apply checks: the state still
    /// makes it so, as `decide` would say.
    #[test]
    fn an_unapplied_event_is_recorded_only_while_the_state_still_makes_it_so() {
        let stale = unapplied_condition(
            &event(JobStatus::Processing, Some(20)),
            Decision::Stale,
            JobStatus::Processing,
        );
        assert_eq!(
            stale.0,
            "attribute_exists(#pk) AND NOT (#rank < :rank OR (#status = :processing AND \
             (attribute_not_exists(#progress) OR #progress < :progress)))"
        );
        assert_eq!(stale.1[":progress"], n(20));
        let stale_end = unapplied_condition(
            &event(JobStatus::Completed, None),
            Decision::Stale,
            JobStatus::Completed,
        );
        assert_eq!(stale_end.0, "#status = :status");
        assert_eq!(stale_end.1[":status"], s("completed"));
        let conflict = unapplied_condition(
            &event(JobStatus::Failed, None),
            Decision::Conflict,
            JobStatus::Completed,
        );
        assert_eq!(
            (conflict.0.as_str(), &conflict.1[":seen"]),
            ("#status = :seen", &s("completed"))
        );
    }

    /// The store writes as its memory of the job says: an event that can
    /// move the job forward, or a job it has not seen, gets the state update.
    #[test]
    fn the_plan_follows_what_the_store_last_saw_of_the_job() {
        use JobStatus::{Completed, Failed, Processing};
        let cases = [
            (None, event(Completed, None), Plan::Forward),
            (Some((Processing, Some(40))), event(Processing, Some(50)), Plan::Forward),
            (
                Some((Processing, Some(40))),
                event(Processing, Some(30)),
                Plan::Unapplied(Decision::Stale, Processing),
            ),
            (
                Some((Completed, Some(100))),
                event(Failed, None),
                Plan::Unapplied(Decision::Conflict, Completed),
            ),
            (
                Some((Completed, Some(100))),
                event(Completed, None),
                Plan::Unapplied(Decision::Stale, Completed),
            ),
        ];
        for (seen, e, plan) in cases {
            assert_eq!(plan_for(seen, &e), plan, "{seen:?} {e:?}");
        }
    }
    /// The IAM action AWS authorizes a transaction item as.
    fn item_action(item: &TransactWriteItem) -> &'static str {
        if item.update().is_some() {
            "dynamodb:UpdateItem"
        } else if item.put().is_some() {
            "dynamodb:PutItem"
        } else if item.condition_check().is_some() {
            "dynamodb:ConditionCheckItem"
        } else {
            "dynamodb:DeleteItem"
        }
    }

    /// The template grants `APPLY_ACTIONS` to the functions that apply (a
    /// test there holds it): every item of every plan's transaction is one.
    #[test]
    fn every_item_an_apply_writes_is_authorized_as_one_of_the_apply_actions() {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .build();
        let store = DynamoJobStore::new(
            Client::from_conf(config),
            "jobs",
            Duration::from_secs(86_400),
            Arc::new(crate::clock::SystemClock),
        );
        let now = OffsetDateTime::UNIX_EPOCH;
        let plans = [
            Plan::Forward,
            Plan::Unapplied(Decision::Stale, JobStatus::Completed),
            Plan::Unapplied(Decision::Conflict, JobStatus::Failed),
        ];
        let mut used = BTreeSet::new();
        for plan in plans {
            for item in store.apply_items(&event(JobStatus::Processing, Some(10)), plan, now) {
                used.insert(item_action(&item));
            }
        }
        for item in store.transition_items(&event(JobStatus::Completed, None), Guard::Transitions(2), now) {
            used.insert(item_action(&item));
        }
        assert_eq!(used, APPLY_ACTIONS.iter().copied().collect::<BTreeSet<_>>());
    }
}
