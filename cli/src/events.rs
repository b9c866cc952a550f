//! `jobhook events`: what the provider sent for one job, as it was received,
//! with what became of each delivery and poll answer.

use std::io::Write;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use jobhook::archive::Archiver;
use jobhook::domain::archive::{ArchiveRecord, RecordKind};
use jobhook::domain::job::TimelineEntry;
use serde_json::{json, Value};

use crate::{printable, write, CliError};

/// One timeline entry with its archived record, when it has one.
#[derive(Debug)]
pub struct ArchivedEvent {
    pub entry: TimelineEntry,
    /// None: nothing was archived for it (a 404 count, an abandon, or an
    /// entry older than the archive); Err: it was, and cannot be read.
    pub record: Option<Result<ArchiveRecord, String>>,
}

/// The job's timeline with each entry's record read back, oldest first.
pub async fn load(archiver: &Archiver, entries: Vec<TimelineEntry>) -> Vec<ArchivedEvent> {
    let mut events = Vec::with_capacity(entries.len());
    for entry in entries {
        let record = match &entry.archive {
            Some(location) => Some(archiver.read(location).await.map_err(|e| e.to_string())),
            None => None,
        };
        events.push(ArchivedEvent { entry, record });
    }
    events
}

/// The body as the person reading should see it: JSON indented (its keys
/// in the order sent, its numbers as written), other text as it is, and
/// anything else base64.
pub(crate) fn body_text(body: &[u8]) -> String {
    match std::str::from_utf8(body) {
        Ok(text) if serde_json::from_str::<Value>(text).is_ok() => indent_json(text),
        Ok(text) => text.to_owned(),
        Err(_) => format!("(not UTF-8; base64) {}", BASE64.encode(body)),
    }
}

/// Re-indents valid JSON text token by token: nothing inside a string or a
/// number changes, only the whitespace between tokens.
fn indent_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.push_str(&"  ".repeat(depth));
    };
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                // An empty object or array stays on one line.
                while chars.peek().is_some_and(|n| n.is_whitespace()) {
                    chars.next();
                }
                if chars.peek().is_some_and(|n| *n == '}' || *n == ']') {
                    out.push(chars.next().expect("peeked"));
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

fn transition(entry: &TimelineEntry) -> Option<String> {
    let status = entry.status?;
    Some(match entry.progress {
        Some(p) => format!("{status} {p}%"),
        None => status.to_string(),
    })
}

pub fn text(events: &[ArchivedEvent]) -> String {
    let mut lines = Vec::new();
    for (i, event) in events.iter().enumerate() {
        let e = &event.entry;
        if i > 0 {
            lines.push(String::new());
        }
        let what = match &event.record {
            Some(Ok(record)) if record.kind == RecordKind::Poll => "poll answer",
            Some(Ok(_)) => "delivery",
            _ => e.origin.as_str(),
        };
        let caused = match (e.outcome.as_str(), transition(e)) {
            ("applied", Some(to)) => format!("applied → {to}"),
            (outcome, Some(to)) => format!("{outcome} (said {to})"),
            (outcome, None) => outcome.to_owned(),
        };
        // A record says when the receiver took it; the entry, when it was applied.
        let at = match &event.record {
            Some(Ok(record)) => &record.received_at,
            _ => &e.received_at,
        };
        lines.push(format!(
            "{}  {what}  {caused}  {} ({})",
            printable(at),
            printable(&e.event_id),
            printable(&e.kind)
        ));
        match &event.record {
            None => lines.push("  (nothing archived)".into()),
            Some(Err(error)) => lines.push(format!("  archive unreadable: {}", printable(error))),
            Some(Ok(record)) => {
                if let Some(scheme) = &record.scheme {
                    let mut verified = format!(
                        "  {} by {}",
                        record.verification.as_deref().map(printable).unwrap_or_default(),
                        printable(scheme)
                    );
                    if let Some(id) = &record.webhook_id {
                        verified.push_str(&format!(", webhook-id {}", printable(id)));
                    }
                    if let Some(at) = record.signed_at {
                        verified.push_str(&format!(", signed at {at}"));
                    }
                    lines.push(verified);
                }
                if !record.headers.is_empty() {
                    lines.push("  headers:".into());
                    for (name, value) in &record.headers {
                        lines.push(format!("    {}: {}", printable(name), printable(value)));
                    }
                }
                if record.kind == RecordKind::Delivery {
                    lines.push(format!("  body ({} bytes):", record.body.len()));
                    lines.extend(body_text(&record.body).lines().map(|l| format!("    {}", printable(l))));
                }
                if let Some(answer) = &record.answer {
                    let label = if record.kind == RecordKind::Poll {
                        "answer"
                    } else {
                        "the API answered"
                    };
                    lines.push(format!("  {label}:"));
                    let pretty = serde_json::to_string_pretty(answer).expect("an answer serializes");
                    lines.extend(pretty.lines().map(|l| format!("    {}", printable(l))));
                }
            }
        }
    }
    lines.join("\n")
}

pub fn json(events: &[ArchivedEvent]) -> Value {
    Value::Array(
        events
            .iter()
            .map(|event| {
                let e = &event.entry;
                let mut item = json!({
                    "received_at": e.received_at,
                    "event_id": e.event_id,
                    "kind": e.kind,
                    "origin": e.origin,
                    "outcome": e.outcome,
                    "status": e.status,
                    "progress": e.progress,
                });
                match &event.record {
                    None => item["archived"] = json!(false),
                    Some(Err(error)) => {
                        item["archived"] = json!(true);
                        item["archive_error"] = json!(error);
                    }
                    Some(Ok(record)) => {
                        item["archived"] = json!(true);
                        item["record"] = json!(record.kind);
                        item["scheme"] = json!(record.scheme);
                        item["verification"] = json!(record.verification);
                        item["webhook_id"] = json!(record.webhook_id);
                        item["signed_at"] = json!(record.signed_at);
                        item["headers"] = json!(record.headers);
                        match std::str::from_utf8(&record.body) {
                            Ok(text) => item["body"] = json!(text),
                            Err(_) => item["body_base64"] = json!(BASE64.encode(&record.body)),
                        }
                        item["answer"] = json!(record.answer);
                    }
                }
                item
            })
            .collect(),
    )
}

pub fn print(events: &[ArchivedEvent], as_json: bool, out: &mut dyn Write) -> Result<(), CliError> {
    if as_json {
        write(
            out,
            &serde_json::to_string_pretty(&json(events)).expect("events serialize"),
        )
    } else {
        write(out, &text(events))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_indented_with_its_keys_in_the_order_sent_and_its_strings_untouched() {
        let body = br#"{"z":1,"a":{"s":"a, b: {c}","e":"\"q\"","n":[]},"list":[1.50,{}], "x" :null}"#;
        assert_eq!(
            body_text(body),
            "{\n  \"z\": 1,\n  \"a\": {\n    \"s\": \"a, b: {c}\",\n    \"e\": \"\\\"q\\\"\",\n    \"n\": []\n  },\n  \"list\": [\n    1.50,\n    {}\n  ],\n  \"x\": null\n}"
        );
        assert_eq!(body_text(b"not json {"), "not json {");
        assert_eq!(body_text(&[0xff, 0x00]), "(not UTF-8; base64) /wA=");
    }
}
