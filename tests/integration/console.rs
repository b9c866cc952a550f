//! `jobhook console` in a real browser: Debian's chromium, headless, driven
//! through chromedriver (WebDriver), against a table, a DLQ and an events
//! queue made from the template in moto. The overview's counts are checked
//! against the store, a job link opens its timeline, a dead letter is
//! redriven and leaves the list, and jobs whose ids, errors, results, URLs
//! and deliveries are hostile render inert. Each page's screenshot is
//! written under `target/console/`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::MessageAttributeValue;
use fantoccini::{Client, ClientBuilder, Locator};
use jobhook::adapters::dynamodb::DynamoJobStore;
use jobhook::clock::SystemClock;
use jobhook::domain::archive::{ArchiveLocation, ArchiveRecord, RecordKind};
use jobhook::domain::job::{JobStatus, Origin};
use jobhook::ports::{JobQuery, JobStore};
use jobhook_cli::console::{router, Console, ConsoleSettings};
use jobhook_tests::{aws, dynamodb, job_event, sqs, workspace_root};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Strings that run script if a page ever lets them through as markup.
const SCRIPT_ID: &str = "<script>window.__pwned=1</script>";
const ATTRIBUTE_ID: &str = "\"><img src=x onerror=\"window.__pwned=1\">";
const CONTROL_ID: &str = "ctl-\u{1b}[31m-\u{7}-\u{0}-end";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn chromedriver() -> Driver {
    assert!(
        std::path::Path::new(CHROMEDRIVER).exists() && std::path::Path::new(CHROMIUM).exists(),
        "the console's browser test needs Debian's chromium and chromium-driver: `make browser` installs them"
    );
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let driver = Driver {
        child: Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver"),
        url: url.clone(),
    };
    let http = reqwest::Client::new();
    for _ in 0..100 {
        if http
            .get(format!("{url}/status"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return driver;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not start on {url}");
}

async fn browser(driver: &Driver, profile: &std::path::Path) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": CHROMIUM,
            // As root, without a GPU, on a machine whose network is closed.
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-quic", "--no-first-run", "--window-size=1280,1000",
                     format!("--user-data-dir={}", profile.display())]
        }),
    );
    // A dialog stays open, so that the test can ask whether one was opened.
    capabilities.insert("unhandledPromptBehavior".into(), "ignore".into());
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a chromium session")
}

/// After each page: no dialog open, no script of a provider's ran, no
/// element a provider's string could have made, and the page rendered to
/// its end.
async fn assert_inert(client: &Client, page: &str) {
    assert!(client.get_alert_text().await.is_err(), "{page}: a dialog opened");
    let pwned = client
        .execute("return window.__pwned === undefined", vec![])
        .await
        .expect("run the check");
    assert_eq!(pwned, serde_json::Value::Bool(true), "{page}: a provider's script ran");
    for (selector, what) in [
        ("script", "a script element"),
        ("main img", "an image element"),
        ("a[href^='javascript']", "a javascript: link"),
        ("[onerror]", "an onerror attribute"),
    ] {
        let found = client.find_all(Locator::Css(selector)).await.expect("query the page");
        assert!(found.is_empty(), "{page}: {what} ({selector}) is on the page");
    }
    client
        .find(Locator::Id("rendered"))
        .await
        .unwrap_or_else(|_| panic!("{page}: the page did not render to its footer"));
}

async fn screenshot(client: &Client, name: &str) {
    let dir = workspace_root().join("target/console");
    std::fs::create_dir_all(&dir).expect("target/console");
    let png = client.screenshot().await.expect("a screenshot");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("write the screenshot");
}

async fn cell(client: &Client, selector: &str) -> u64 {
    let text = client
        .find(Locator::Css(selector))
        .await
        .unwrap_or_else(|_| panic!("no {selector}"))
        .text()
        .await
        .expect("text");
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("{selector}: {text:?} is not a count"))
}

/// A delivery's record as the receiver archives it, inline.
fn archived(source: &str, headers: &[(&str, &str)], body: &str) -> ArchiveLocation {
    let record = ArchiveRecord {
        kind: RecordKind::Delivery,
        source: source.into(),
        received_at: "2026-12-04T00:00:00.000Z".into(),
        scheme: Some("standard-webhooks".into()),
        verification: Some("verified".into()),
        webhook_id: Some("msg_1".into()),
        signed_at: None,
        headers: headers.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
        body: body.as_bytes().to_vec(),
        answer: None,
    };
    ArchiveLocation::Inline(record.encode())
}

#[tokio::test]
async fn the_console_in_chromium_counts_what_the_store_holds_opens_timelines_redrives_and_renders_hostile_jobs_inert() {
    let config = aws().await;
    let ddb = aws_sdk_dynamodb::Client::new(&config);
    let table = dynamodb::create_table(&ddb, "console").await;
    let sqs_client = aws_sdk_sqs::Client::new(&config);
    let queue_url = sqs::create_events_queue(&sqs_client, "console-events").await;
    let dlq_url = sqs::create_events_dlq(&sqs_client, "console-dlq").await;
    let store = Arc::new(DynamoJobStore::new(
        ddb.clone(),
        &table,
        Duration::from_secs(86_400),
        Arc::new(SystemClock),
    ));

    // Two sources' worth of ordinary jobs.
    let mut event = 0;
    let mut apply = |source: &'static str, job: String, status: JobStatus, origin: Origin| {
        event += 1;
        let mut e = job_event(source, &job, &format!("evt-{event}"), status, None);
        e.origin = origin;
        e
    };
    let mut events = Vec::new();
    for i in 0..4 {
        events.push(apply(
            "dev",
            format!("done-{i}"),
            JobStatus::Processing,
            Origin::Webhook,
        ));
        events.push(apply("dev", format!("done-{i}"), JobStatus::Completed, Origin::Webhook));
    }
    events.push(apply("dev", "repaired".into(), JobStatus::Completed, Origin::Poll));
    events.push(apply("dev", "running".into(), JobStatus::Processing, Origin::Webhook));
    let mut failed = apply("dev", "broke".into(), JobStatus::Failed, Origin::Webhook);
    failed.error = Some("out of memory".into());
    events.push(failed);
    for i in 0..3 {
        events.push(apply(
            "replicate",
            format!("r{i}"),
            JobStatus::Processing,
            Origin::Webhook,
        ));
    }
    events.push(apply("replicate", "r0".into(), JobStatus::Completed, Origin::Poll));

    // The hostile corpus: ids, errors, results, output URLs and deliveries
    // that are markup, script URLs, control characters and 100 KB.
    let big = "<b>x</b>".repeat(12_800);
    let mut hostile = Vec::new();
    for (i, id) in [SCRIPT_ID, ATTRIBUTE_ID, CONTROL_ID].into_iter().enumerate() {
        let mut e = apply("dev", id.to_owned(), JobStatus::Failed, Origin::Webhook);
        e.error = Some(format!(
            "{SCRIPT_ID}{ATTRIBUTE_ID}\u{1b}[2J{}",
            if i == 0 { &big } else { "" }
        ));
        e.archive = Some(archived(
            "dev",
            &[("content-type", "text/html"), ("x-evil", ATTRIBUTE_ID)],
            &format!(
                "{{\"id\":\"{}\",\"note\":\"</pre><script>window.__pwned=1</script>\"}}",
                i
            ),
        ));
        hostile.push(e);
    }
    let mut url_job = apply("dev", "javascript-url".into(), JobStatus::Completed, Origin::Webhook);
    url_job.output_url = Some("javascript:window.__pwned=1".into());
    url_job.result = Some(serde_json::json!({"caption": SCRIPT_ID, "html": ATTRIBUTE_ID, "big": big}).to_string());
    hostile.push(url_job);
    let mut data_url = apply("dev", "data-url".into(), JobStatus::Completed, Origin::Webhook);
    data_url.output_url = Some("data:text/html,<script>window.__pwned=1</script>".into());
    hostile.push(data_url);
    // A job whose stored state its archive no longer agrees with: the
    // delivery said completed, the store says processing.
    let mut drifted = apply("dev", "drifted".into(), JobStatus::Processing, Origin::Webhook);
    drifted.archive = Some(archived(
        "dev",
        &[("content-type", "application/json")],
        &serde_json::json!({"id": "body-drifted", "type": "job.completed", "created_at": "2026-05-13T12:00:05Z",
                            "data": {"job_id": "drifted", "output_url": "https://cdn.example.com/drifted.mp4"}})
        .to_string(),
    ));
    events.push(drifted);
    for e in events.iter().chain(&hostile) {
        store.apply(e).await.expect("apply");
    }
    store.track("replicate", "tracked-only").await.expect("track");
    assert!(store
        .record_outputs_lost(
            "dev",
            "done-0",
            "https://cdn.example.com/done-0.mp4",
            "the output is gone at the provider (HTTP 404)"
        )
        .await
        .expect("record"));

    // Two dead letters, one with a hostile reason.
    for (body, reason) in [
        ("{\"first\":true}", "the body is not JSON"),
        ("{\"second\":true}", "<script>window.__pwned=1</script> bad envelope"),
    ] {
        sqs_client
            .send_message()
            .queue_url(&dlq_url)
            .message_body(body)
            .message_attributes(
                "reason",
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(reason)
                    .build()
                    .expect("attribute"),
            )
            .message_attributes(
                "source",
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value("dev")
                    .build()
                    .expect("attribute"),
            )
            .send()
            .await
            .expect("dead-letter");
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("listen");
    let bound: SocketAddr = listener.local_addr().expect("address");
    let settings = ConsoleSettings {
        table: table.clone(),
        queue_url: Some(queue_url.clone()),
        dlq_url: Some(dlq_url.clone()),
        outputs_dlq_url: None,
        sources: Some(
            jobhook::Sources::parse(
                &serde_json::json!({"sources": {
                    "dev": {"scheme": "standard-webhooks", "secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"], "provider": "generic"},
                    "replicate": {"scheme": "standard-webhooks", "secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"], "provider": "replicate"}
                }})
                .to_string(),
            )
            .expect("sources"),
        ),
        source_names: vec!["dev".into(), "replicate".into()],
        window: Duration::from_secs(86_400),
        overdue_after: Duration::from_secs(600),
    };
    let console = Arc::new(Console::new(store.clone(), &config, settings, bound));
    tokio::spawn(async move { axum::serve(listener, router(console)).await });
    let base = format!("http://{bound}");

    // The guards, as any client meets them.
    let http = reqwest::Client::new();
    let answer = http.get(format!("{base}/")).send().await.expect("overview");
    let csp = answer.headers()["content-security-policy"]
        .to_str()
        .expect("text")
        .to_owned();
    assert!(
        csp.starts_with("default-src 'none'") && !csp.contains("script-src"),
        "{csp}"
    );
    let rebound = http
        .get(format!("{base}/"))
        .header("host", format!("evil.example:{}", bound.port()))
        .send()
        .await
        .expect("answer");
    assert_eq!(rebound.status(), 421, "a Host other than loopback is refused");
    let forged = http
        .post(format!("{base}/dlq/redrive"))
        .form(&[("token", "0".repeat(64))])
        .send()
        .await
        .expect("answer");
    assert_eq!(forged.status(), 403, "a POST without the console's token is refused");
    let bad = http
        .get(format!("{base}/jobs?status=nonsense"))
        .send()
        .await
        .expect("answer");
    assert_eq!(bad.status(), 400);

    let driver = chromedriver().await;
    let profile = std::env::temp_dir().join(jobhook_tests::unique_name("chromium-profile"));
    let client = browser(&driver, &profile).await;

    // The overview's counts are the store's.
    client.goto(&format!("{base}/")).await.expect("open the overview");
    assert_inert(&client, "overview").await;
    screenshot(&client, "overview").await;
    for source in ["dev", "replicate"] {
        let mut expected: BTreeMap<&str, u64> = BTreeMap::new();
        let mut open = 0;
        let mut cursor = None;
        loop {
            let page = store.jobs_of(source, cursor.as_deref()).await.expect("scan");
            for job in &page.jobs {
                *expected.entry(job.fields.status.as_str()).or_default() += 1;
                open += u64::from(!job.fields.status.is_terminal());
            }
            cursor = page.next;
            if cursor.is_none() {
                break;
            }
        }
        for status in ["submitted", "processing", "completed", "failed", "canceled"] {
            let shown = cell(
                &client,
                &format!("#by-status tr[data-source='{source}'] td[data-status='{status}']"),
            )
            .await;
            assert_eq!(shown, expected.get(status).copied().unwrap_or(0), "{source} {status}");
        }
        let shown_open = cell(
            &client,
            &format!("#by-status tr[data-source='{source}'] td[data-count='open']"),
        )
        .await;
        assert_eq!(shown_open, open, "{source} open");
    }
    assert_eq!(
        cell(&client, "#coverage tr[data-source='dev'] td[data-count='poll']").await,
        1
    );
    assert_eq!(
        cell(&client, "#coverage tr[data-source='replicate'] td[data-count='poll']").await,
        1
    );
    let attention = client
        .find(Locator::Id("attention"))
        .await
        .expect("attention")
        .text()
        .await
        .expect("text");
    assert!(attention.contains("events DLQ: 2 messages"), "{attention}");
    assert!(attention.contains("dev: 1 jobs' outputs were not kept"), "{attention}");

    // A job link opens its timeline.
    client
        .goto(&format!("{base}/jobs?source=dev"))
        .await
        .expect("open the list");
    assert_inert(&client, "jobs").await;
    screenshot(&client, "jobs").await;
    client
        .find(Locator::LinkText("done-2"))
        .await
        .expect("a link to done-2")
        .click()
        .await
        .expect("click");
    let title = client
        .wait()
        .for_element(Locator::Id("job-title"))
        .await
        .expect("title")
        .text()
        .await
        .expect("text");
    assert_eq!(title, "dev / done-2");
    let rows = client.find_all(Locator::Css("#timeline tr.event")).await.expect("rows");
    assert_eq!(
        rows.len(),
        store.timeline("dev", "done-2").await.expect("timeline").len()
    );
    assert_eq!(rows.len(), 2);
    let notified = client
        .find_all(Locator::Css("#notifications tbody tr"))
        .await
        .expect("rows");
    assert_eq!(notified.len(), 2, "one notification per transition");
    assert_inert(&client, "job").await;
    screenshot(&client, "job").await;

    // Replay: a dry run shows the difference and writes nothing; applying
    // it, after the confirmation, writes it as the next transition.
    let drifted_href = jobhook_cli::console::job_href("dev", "drifted");
    client
        .goto(&format!("{base}{drifted_href}"))
        .await
        .expect("the drifted job");
    client
        .find(Locator::Id("replay"))
        .await
        .expect("dry run")
        .click()
        .await
        .expect("click");
    let apply_button = client
        .wait()
        .for_element(Locator::Id("apply"))
        .await
        .expect("an apply button");
    let result = client
        .find(Locator::Id("replay-result"))
        .await
        .expect("result")
        .text()
        .await
        .expect("text");
    assert!(
        result.contains("Stored: processing") && result.contains("From its archive: completed"),
        "{result}"
    );
    let before = store.get("dev", "drifted").await.expect("get").expect("job");
    assert_eq!(before.fields.status, JobStatus::Processing, "a dry run writes nothing");
    assert_inert(&client, "replay dry run").await;
    screenshot(&client, "replay").await;
    apply_button.click().await.expect("apply");
    let applied = client
        .wait()
        .for_element(Locator::Id("applied"))
        .await
        .expect("applied")
        .text()
        .await
        .expect("text");
    assert!(
        applied.contains(&format!("transition {}", before.transitions + 1)),
        "{applied}"
    );
    let after = store.get("dev", "drifted").await.expect("get").expect("job");
    assert_eq!(
        (after.fields.status, after.transitions),
        (JobStatus::Completed, before.transitions + 1)
    );

    // Every hostile job's page and the list that holds them render inert,
    // with the hostile text shown as text.
    client
        .goto(&format!("{base}/jobs?source=dev&status=failed"))
        .await
        .expect("list");
    assert_inert(&client, "hostile list").await;
    let listed = client
        .find(Locator::Id("jobs"))
        .await
        .expect("table")
        .text()
        .await
        .expect("text");
    assert!(listed.contains(SCRIPT_ID) && listed.contains(ATTRIBUTE_ID), "{listed}");
    for e in &hostile {
        let href = jobhook_cli::console::job_href(&e.source, &e.job_id);
        client.goto(&format!("{base}{href}")).await.expect("hostile job");
        let page = format!("job {:?}", e.job_id);
        assert_inert(&client, &page).await;
        let title = client
            .find(Locator::Id("job-title"))
            .await
            .expect("title")
            .text()
            .await
            .expect("text");
        assert_eq!(title, format!("dev / {}", jobhook_cli::printable(&e.job_id)), "{page}");
        if let Some(error) = &e.error {
            let shown = client
                .find(Locator::Css("#error pre"))
                .await
                .expect("error")
                .text()
                .await
                .expect("text");
            assert!(shown.starts_with(SCRIPT_ID), "{page}: the error is shown as text");
            assert!(
                shown.len() >= error.len().min(50_000),
                "{page}: the long error is shown whole"
            );
        }
        if e.output_url.is_some() {
            let outputs = client.find(Locator::Id("outputs")).await.expect("outputs");
            assert!(
                outputs.find_all(Locator::Css("a")).await.expect("links").is_empty(),
                "{page}: not a link"
            );
        }
    }
    let href = jobhook_cli::console::job_href("dev", SCRIPT_ID);
    client.goto(&format!("{base}{href}")).await.expect("hostile job");
    for details in client.find_all(Locator::Css("details")).await.expect("details") {
        details.click().await.expect("open the delivery");
    }
    let body = client
        .find(Locator::Css("pre.body"))
        .await
        .expect("body")
        .text()
        .await
        .expect("text");
    assert!(body.contains("</pre><script>window.__pwned=1</script>"), "{body}");
    assert_inert(&client, "hostile delivery").await;
    screenshot(&client, "hostile-job").await;

    // A dead letter is redriven, after a confirmation, and leaves the list.
    client.goto(&format!("{base}/dlq")).await.expect("open the DLQ");
    assert_inert(&client, "dlq").await;
    screenshot(&client, "dlq").await;
    let letters = client.find_all(Locator::Css("tr.dead-letter")).await.expect("rows");
    assert_eq!(letters.len(), 2);
    let first = letters[0]
        .attr("data-message")
        .await
        .expect("attr")
        .expect("a message id");
    letters[0]
        .find(Locator::Css("a.redrive"))
        .await
        .expect("redrive link")
        .click()
        .await
        .expect("click");
    client
        .wait()
        .for_element(Locator::Id("confirm"))
        .await
        .expect("a confirmation")
        .click()
        .await
        .expect("confirm");
    let notice = match client.wait().for_element(Locator::Id("notice")).await {
        Ok(notice) => notice.text().await.expect("text"),
        Err(_) => panic!(
            "no notice after the redrive: {}",
            client.source().await.unwrap_or_default()
        ),
    };
    assert!(notice.contains("sent back"), "{notice}");
    let left: Vec<String> = {
        let mut ids = Vec::new();
        for row in client.find_all(Locator::Css("tr.dead-letter")).await.expect("rows") {
            ids.extend(row.attr("data-message").await.expect("attr"));
        }
        ids
    };
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(!left.contains(&first), "the redriven message left the list");
    let requeued = sqs::drain(&sqs_client, &queue_url, 5).await;
    assert_eq!(requeued.len(), 1);
    assert_eq!(
        requeued[0].message_attributes().and_then(|a| a.get("reason")),
        None,
        "the reason stays behind"
    );

    // Then the rest, all at once: the page follows the redrive to its end.
    client
        .wait()
        .for_element(Locator::Id("redrive-all"))
        .await
        .expect("redrive all")
        .click()
        .await
        .expect("click");
    client
        .wait()
        .for_element(Locator::Id("confirm"))
        .await
        .expect("a confirmation")
        .click()
        .await
        .expect("confirm");
    let mut progress = String::new();
    for _ in 0..50 {
        client.goto(&format!("{base}/dlq")).await.expect("open the DLQ");
        progress = client
            .find(Locator::Id("redrive-progress"))
            .await
            .expect("progress")
            .text()
            .await
            .expect("text");
        if progress.starts_with("Redrive finished") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(progress, "Redrive finished: 1 messages moved back to the events queue.");
    assert!(client
        .find_all(Locator::Css("tr.dead-letter"))
        .await
        .expect("rows")
        .is_empty());
    assert_eq!(sqs::drain(&sqs_client, &queue_url, 5).await.len(), 1);

    client.close().await.expect("close the browser");
    let _ = std::fs::remove_dir_all(profile);
}
