//! The console's pages as askama templates, and the rules for showing what
//! a provider sent: every such string is escaped by the template engine,
//! its control characters are shown as escapes, and a URL is a link only if
//! it is `http` or `https`.

use askama::Template;

/// What every page's frame shows.
#[derive(Debug)]
pub struct Frame {
    pub nav: &'static str,
    pub table: String,
    pub rendered_at: String,
}

/// Text from outside (a provider, a queue) as a page shows it: control
/// characters escaped, and at most `max` characters, saying how much more
/// there was. The template escapes the HTML.
pub fn shown(value: &str, max: usize) -> String {
    let printable = crate::printable(value);
    match printable.char_indices().nth(max) {
        None => printable,
        Some((cut, _)) => format!("{}… ({} more bytes)", &printable[..cut], printable.len() - cut),
    }
}

/// Identifiers in lists and headings.
pub const SHORT: usize = 160;
/// Bodies, results and errors on a job's page.
pub const LONG: usize = 200_000;

/// `url` as a link target if it is an absolute `http` or `https` URL, in
/// its serialized (percent-encoded) form; None for anything else, such as
/// `javascript:` or `data:`, which is shown as text.
pub fn link(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url.trim()).ok()?;
    matches!(parsed.scheme(), "http" | "https").then(|| parsed.to_string())
}

/// The console's path of a job: each part percent-encoded as a segment.
pub fn job_href(source: &str, job_id: &str) -> String {
    let mut base = url::Url::parse("http://console/").expect("a valid base");
    base.path_segments_mut()
        .expect("an http URL has segments")
        .extend(["jobs", source, job_id]);
    base.path().to_owned()
}

/// A query string, encoded.
pub fn query(pairs: &[(&str, &str)]) -> String {
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        serializer.append_pair(k, v);
    }
    serializer.finish()
}

#[derive(Debug)]
pub struct Attention {
    /// `bad` or `warn`.
    pub severity: &'static str,
    pub text: String,
    pub href: String,
}

#[derive(Debug)]
pub struct StatusCell {
    pub status: &'static str,
    pub count: u64,
    pub href: String,
}

#[derive(Debug)]
pub struct SourceRow {
    pub source: String,
    pub href: String,
    pub by_status: Vec<StatusCell>,
    pub open: u64,
    pub open_href: String,
    pub overdue: u64,
    pub overdue_href: String,
    pub abandoned: u64,
    pub abandoned_href: String,
    pub ended: u64,
    pub by_webhook: u64,
    pub by_poll: u64,
    pub by_replay: u64,
    pub coverage: String,
}

#[derive(Debug)]
pub struct QueueRow {
    pub name: &'static str,
    pub depth: String,
    pub href: Option<String>,
}

#[derive(Debug, Template)]
#[template(path = "overview.html")]
pub struct OverviewPage {
    pub frame: Frame,
    pub attention: Vec<Attention>,
    pub statuses: Vec<&'static str>,
    pub rows: Vec<SourceRow>,
    pub window: String,
    pub truncated: bool,
    pub cap: usize,
    pub queues: Vec<QueueRow>,
}

#[derive(Debug)]
pub struct JobRow {
    pub source: String,
    pub job_id: String,
    pub href: String,
    pub status: &'static str,
    pub status_text: String,
    pub ended_by: &'static str,
    pub transitions: u64,
    pub updated_at: String,
    pub first_seen: String,
}

#[derive(Debug)]
pub struct ExactMatch {
    pub source: String,
    pub job_id: String,
    pub href: String,
}

#[derive(Debug, Template)]
#[template(path = "jobs.html")]
pub struct JobsPage {
    pub frame: Frame,
    /// Each source, and whether the list shows it alone.
    pub sources: Vec<(String, bool)>,
    /// Each filter, and whether it is the one applied.
    pub filters: Vec<(&'static str, bool)>,
    pub q: String,
    pub exact: Option<ExactMatch>,
    pub jobs: Vec<JobRow>,
    pub next_href: Option<String>,
    pub empty_text: &'static str,
    pub read: usize,
}

#[derive(Debug)]
pub struct OutputLink {
    pub label: &'static str,
    pub text: String,
    pub href: Option<String>,
    /// A URL from the provider that is shown as text only.
    pub unlinkable: bool,
}

#[derive(Debug)]
pub struct JobView {
    pub source: String,
    pub job_id: String,
    pub href: String,
    pub status: &'static str,
    pub status_text: String,
    pub error: Option<String>,
    pub result: Option<String>,
    pub ended_by: &'static str,
    pub transitions: u64,
    pub first_seen: String,
    pub updated_at: String,
    pub provider_time: Option<String>,
    pub abandoned_at: Option<String>,
    pub outputs_lost: Option<String>,
    /// Kept copies first, then the provider's own.
    pub outputs: Vec<OutputLink>,
}

#[derive(Debug)]
pub struct RecordView {
    pub summary: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

#[derive(Debug)]
pub struct EventRow {
    pub received_at: String,
    pub outcome: &'static str,
    pub origin: &'static str,
    pub kind: String,
    pub status: String,
    pub event_id: String,
    pub record: Option<RecordView>,
}

#[derive(Debug)]
pub struct NotificationRow {
    pub id: String,
    pub to: String,
    pub origin: &'static str,
    pub at: String,
}

#[derive(Debug, Template)]
#[template(path = "job.html")]
pub struct JobPage {
    pub frame: Frame,
    pub job: JobView,
    pub events: Vec<EventRow>,
    pub notifications: Vec<NotificationRow>,
    pub can_replay: bool,
    pub token: String,
}

#[derive(Debug)]
pub struct Difference {
    pub stored: String,
    pub derived: String,
    pub applied: bool,
    /// The stored job's transitions when derived (an apply expects them),
    /// or the correction's once written.
    pub transition: u64,
}

#[derive(Debug)]
pub enum ReplayOutcome {
    Agrees,
    Differs(Difference),
    Failed(String),
}

#[derive(Debug, Template)]
#[template(path = "replay.html")]
pub struct ReplayPage {
    pub frame: Frame,
    pub job: JobView,
    pub outcome: ReplayOutcome,
    pub token: String,
}

#[derive(Debug)]
pub struct DeadLetterRow {
    pub id: String,
    pub source: String,
    pub reason: String,
    pub age: String,
    pub receives: String,
    pub bytes: usize,
    pub body: String,
    pub redrive_href: String,
}

#[derive(Debug)]
pub struct RedriveView {
    pub text: String,
    pub failed: bool,
}

#[derive(Debug, Template)]
#[template(path = "dlq.html")]
pub struct DlqPage {
    pub frame: Frame,
    pub redrive: Option<RedriveView>,
    pub redrive_running: bool,
    pub notice: Option<String>,
    pub problem: Option<String>,
    pub depth_text: String,
    pub messages: Vec<DeadLetterRow>,
}

#[derive(Debug, Template)]
#[template(path = "confirm.html")]
pub struct ConfirmPage {
    pub frame: Frame,
    pub title: String,
    pub question: String,
    pub action: String,
    pub fields: Vec<(String, String)>,
    pub button: &'static str,
    pub back: String,
    pub token: String,
}

#[derive(Debug, Template)]
#[template(path = "problem.html")]
pub struct ProblemPage {
    pub frame: Frame,
    pub title: String,
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_and_https_urls_become_links() {
        assert_eq!(
            link("https://cdn.example/out.mp4").as_deref(),
            Some("https://cdn.example/out.mp4")
        );
        assert_eq!(
            link("http://127.0.0.1:9001/o/1").as_deref(),
            Some("http://127.0.0.1:9001/o/1")
        );
        assert_eq!(
            link("https://x.example/a b\"><script>").as_deref(),
            Some("https://x.example/a%20b%22%3E%3Cscript%3E")
        );
        for bad in [
            "javascript:alert(1)",
            " JavaScript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "vbscript:x",
            "//evil.example/x",
            "/relative",
            "file:///etc/passwd",
        ] {
            assert_eq!(link(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_job_path_encodes_each_part_as_one_segment() {
        assert_eq!(job_href("replicate", "abc"), "/jobs/replicate/abc");
        assert_eq!(
            job_href("dev", "a/../b?c=<d>#e"),
            "/jobs/dev/a%2F..%2Fb%3Fc=%3Cd%3E%23e"
        );
    }

    #[test]
    fn long_and_control_text_is_cut_and_escaped() {
        assert_eq!(shown("ok", 10), "ok");
        assert_eq!(shown("a\u{1b}[31mb", 100), "a\\u{1b}[31mb");
        let long = "x".repeat(1000);
        assert_eq!(shown(&long, 10), format!("{}… (990 more bytes)", "x".repeat(10)));
    }

    #[test]
    fn a_template_escapes_what_a_provider_sent() {
        let page = ProblemPage {
            frame: Frame {
                nav: "",
                table: "t".into(),
                rendered_at: "now".into(),
            },
            title: "<script>alert(1)</script>".into(),
            detail: "\"><img src=x onerror=alert(1)>".into(),
        };
        let html = page.render().expect("renders");
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(!html.contains("<img src=x"), "{html}");
        assert!(html.contains("&#60;script&#62;alert(1)"), "{html}");
    }
}
