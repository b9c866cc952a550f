use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::Message;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use jobhook::adapters::file::FileSources;
use jobhook::adapters::secrets_manager::SecretsManagerSources;
use jobhook::adapters::sqs::SqsQueue;
use jobhook::clock::FixedClock;
use jobhook::domain::digest::sha256_hex;
use jobhook::domain::signature::sign;
use jobhook::key_sets::KeySetCache;
use jobhook::ports::SourcesLoader;
use jobhook::sources_cache::SourcesCache;
use jobhook::{Envelope, Sources};
use jobhook_tests::{aws, fixture, fixture_path, sqs, temp_file};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use receiver::Receiver;
use serde_json::Value;

/// The fixtures in `events/receiver/` are signed at this instant.
const FIXTURE_TS: i64 = 1649367553;

struct Harness {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    receiver: Receiver,
}

async fn harness_with(loader: Arc<dyn SourcesLoader>, queue_url: Option<String>, now: i64) -> Harness {
    harness_with_key_sets(loader, jobhook_tests::key_sets(), queue_url, now).await
}

async fn harness_with_key_sets(
    loader: Arc<dyn SourcesLoader>,
    key_sets: KeySetCache,
    queue_url: Option<String>,
    now: i64,
) -> Harness {
    let config = aws().await;
    let sqs_client = aws_sdk_sqs::Client::new(&config);
    let queue_url = match queue_url {
        Some(url) => url,
        None => sqs::create_events_queue(&sqs_client, "receiver").await,
    };
    let receiver = Receiver {
        sources: SourcesCache::new(loader, Duration::from_secs(300)),
        key_sets,
        queue: Arc::new(SqsQueue::new(sqs_client.clone(), &queue_url)),
        clock: Arc::new(FixedClock::at_unix(now)),
        max_body_bytes: 262_144,
        limits: Default::default(),
    };
    Harness {
        sqs: sqs_client,
        queue_url,
        receiver,
    }
}

async fn harness() -> Harness {
    let loader = Arc::new(FileSources::new(fixture_path("sources.fixtures.json")));
    harness_with(loader, None, FIXTURE_TS + 5).await
}

fn load_event(name: &str) -> Request {
    lambda_http::request::from_str(&fixture(&format!("receiver/{name}"))).expect("fixture is a valid Lambda HTTP event")
}

/// The body bytes the provider sent, decoded from the fixture independently of lambda_http.
fn raw_body_of(name: &str) -> Vec<u8> {
    let event: Value = serde_json::from_str(&fixture(&format!("receiver/{name}"))).expect("json");
    let body = event["body"].as_str().expect("body");
    if event["isBase64Encoded"].as_bool().unwrap_or(false) {
        BASE64.decode(body).expect("base64 body")
    } else {
        body.as_bytes().to_vec()
    }
}

fn json_of(response: &Response<Body>) -> Value {
    match response.body() {
        Body::Text(text) => serde_json::from_str(text).expect("json response"),
        other => panic!("expected a text body, got {other:?}"),
    }
}

fn attribute<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
    message.message_attributes.as_ref()?.get(name)?.string_value.as_deref()
}

#[tokio::test]
async fn every_fixture_verifies_and_lands_on_the_queue_with_the_documented_envelope() {
    let cases = [
        (
            "http-api-v2.json",
            "acme",
            Some("msg_fixture_json"),
            "standard-webhooks",
        ),
        (
            "http-api-v2-base64.json",
            "acme",
            Some("msg_fixture_form"),
            "standard-webhooks",
        ),
        ("rest-v1.json", "gh", None, "github"),
        ("rest-v1-base64.json", "gh", None, "github"),
        ("function-url.json", "mux", None, "stripe"),
        ("function-url-base64.json", "mux", None, "stripe"),
        // RunPod's delivery: its token in the query, no signature header.
        ("http-api-v2-unsigned.json", "rp", None, "unsigned"),
    ];
    for (name, source, webhook_id, scheme) in cases {
        let h = harness().await;
        let response = h.receiver.handle(load_event(name)).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED, "{name}: {:?}", response.body());
        let raw = raw_body_of(name);
        let expected_id = webhook_id.map(str::to_owned).unwrap_or_else(|| sha256_hex(&raw));
        assert_eq!(
            json_of(&response),
            serde_json::json!({"status": "accepted", "event_id": expected_id})
        );

        let messages = sqs::drain(&h.sqs, &h.queue_url, 2).await;
        assert_eq!(messages.len(), 1, "{name}: exactly one message");
        let message = &messages[0];
        assert_eq!(attribute(message, "source"), Some(source));
        assert_eq!(attribute(message, "event_id"), Some(expected_id.as_str()));

        let envelope = Envelope::from_json(message.body.as_deref().expect("body")).expect("envelope");
        assert_eq!(envelope.v, 1);
        assert_eq!(envelope.source, source);
        assert_eq!(envelope.event_id, expected_id);
        assert_eq!(envelope.scheme, scheme);
        assert_eq!(envelope.webhook_id.as_deref(), webhook_id);
        assert_eq!(envelope.received_at, "2022-04-07T21:39:18.000Z");
        assert_eq!(envelope.body_bytes().expect("body"), raw, "{name}: raw bytes preserved");
        let content_type = if name.contains("base64") {
            "application/x-www-form-urlencoded"
        } else {
            "application/json"
        };
        assert_eq!(
            envelope.headers.get("content-type").map(String::as_str),
            Some(content_type)
        );
        // The signature stays with the delivery for the archive (a MAC of the
        // body, no secret); the front door's own headers do not.
        let signature = match source {
            "acme" => "webhook-signature",
            "gh" => "x-hub-signature-256",
            "rp" => "user-agent",
            _ => "mux-signature",
        };
        assert!(
            envelope.headers.contains_key(signature),
            "{name}: {:?}",
            envelope.headers
        );
        if !name.contains("base64") {
            assert_eq!(
                envelope.headers.get("x-forwarded-for").map(String::as_str),
                Some("203.0.113.9")
            );
        }
        assert!(
            !envelope.headers.keys().any(|k| k == "host" || k.starts_with("x-amzn-")),
            "{name}: {:?}",
            envelope.headers
        );
    }
}

/// A request as a Function URL or the local emulator delivers it: no path
/// parameters, possibly a prefix before `/webhooks/{source}`.
fn raw_request(method: &str, path: &str, headers: &[(String, String)], body: Vec<u8>) -> Request {
    let mut builder = lambda_http::http::Request::builder().method(method).uri(path);
    for (k, v) in headers {
        builder = builder.header(k, v);
    }
    builder.body(Body::Binary(body)).expect("request")
}

fn acme_source() -> jobhook::SourceConfig {
    Sources::parse(&fixture("sources.fixtures.json"))
        .expect("fixture sources")
        .get("acme")
        .expect("acme")
        .clone()
}

#[tokio::test]
async fn binary_body_on_a_prefixed_path_is_verified_and_carried_as_base64() {
    let h = harness().await;
    let body: Vec<u8> = vec![0xff, 0x00, 0xfe, b'{', 0x80];
    let headers = sign::headers_for(&acme_source(), "msg_binary", FIXTURE_TS, &body);
    let response = h
        .receiver
        .handle(raw_request(
            "POST",
            "/lambda-url/receiver/webhooks/acme/",
            &headers,
            body.clone(),
        ))
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED, "{:?}", response.body());
    let messages = sqs::drain(&h.sqs, &h.queue_url, 2).await;
    assert_eq!(messages.len(), 1);
    let envelope = Envelope::from_json(messages[0].body.as_deref().expect("body")).expect("envelope");
    assert!(envelope.body_base64);
    assert_eq!(envelope.body_bytes().expect("decodes"), body);
    assert_eq!(envelope.signed_at, Some(FIXTURE_TS));
}

#[tokio::test]
async fn bodies_that_json_escape_badly_are_queued_base64_and_arrive_byte_for_byte() {
    let mut h = harness().await;
    h.receiver.max_body_bytes = jobhook::config::MAX_BODY_BYTES_LIMIT as usize;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        // 240 KB of control characters: six bytes each once JSON-escaped.
        ("controls", vec![0x01; 240_000]),
        // Valid UTF-8 that SQS refuses in a message.
        ("nonchars", "{\"note\":\"\u{FFFE}\u{FFFF}\"}".as_bytes().to_vec()),
        // The largest body accepted, all quotes (two bytes each escaped).
        ("quotes", vec![b'"'; jobhook::config::MAX_BODY_BYTES_LIMIT as usize]),
    ];
    for (name, body) in cases {
        let id = format!("msg_escape_{name}");
        let headers = sign::headers_for(&acme_source(), &id, FIXTURE_TS, &body);
        let response = h
            .receiver
            .handle(raw_request("POST", "/webhooks/acme", &headers, body.clone()))
            .await;
        assert_eq!(response.status(), StatusCode::ACCEPTED, "{name}: {:?}", response.body());
        let messages = sqs::drain(&h.sqs, &h.queue_url, 2).await;
        assert_eq!(messages.len(), 1, "{name}");
        let envelope = Envelope::from_json(messages[0].body.as_deref().expect("body")).expect("envelope");
        assert!(envelope.body_base64, "{name}");
        assert_eq!(envelope.body_bytes().expect("decodes"), body, "{name}");
    }
}

/// A sender that signs with Standard Webhooks' asymmetric `v1a`: the
/// receiver holds only its public key, and the delivery is queued as any
/// verified one; the same delivery with a changed body is refused.
#[tokio::test]
async fn a_v1a_signed_delivery_is_verified_against_the_source_s_public_key_and_queued() {
    use ring::signature::KeyPair;
    let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(&[5u8; 32]).expect("seed");
    let whpk = format!("whpk_{}", BASE64.encode(pair.public_key().as_ref()));
    let doc = serde_json::json!({"sources": {"ed": {"scheme": "standard-webhooks", "secrets": [whpk]}}});
    let loader = Arc::new(FileSources::new(temp_file("v1a-sources", &doc.to_string())));
    let h = harness_with(loader, None, FIXTURE_TS + 5).await;
    let body = br#"{"type":"job.completed","data":{"job_id":"ed-1"}}"#.to_vec();
    let message = [format!("msg_v1a.{FIXTURE_TS}.").into_bytes(), body.clone()].concat();
    let signature = format!("v1a,{}", BASE64.encode(pair.sign(&message).as_ref()));
    let headers = [
        ("webhook-id".to_owned(), "msg_v1a".to_owned()),
        ("webhook-timestamp".to_owned(), FIXTURE_TS.to_string()),
        ("webhook-signature".to_owned(), signature),
    ];
    let envelope = queued_then_refused_changed(&h, "/webhooks/ed", &headers, body).await;
    assert_eq!(envelope.webhook_id.as_deref(), Some("msg_v1a"));
}

/// A fal key pair from `seed`, and its public key as a JWK's `x`.
fn fal_key(seed: u8) -> (ring::signature::Ed25519KeyPair, String) {
    use ring::signature::KeyPair;
    let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).expect("seed");
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
    (pair, x)
}

/// fal's four headers for `body`, signed by `pair` as fal signs.
fn fal_headers(pair: &ring::signature::Ed25519KeyPair, request_id: &str, body: &[u8]) -> Vec<(String, String)> {
    let message = format!("{request_id}\nuser-1\n{FIXTURE_TS}\n{}", sha256_hex(body));
    vec![
        ("x-fal-webhook-request-id".to_owned(), request_id.to_owned()),
        ("x-fal-webhook-user-id".to_owned(), "user-1".to_owned()),
        ("x-fal-webhook-timestamp".to_owned(), FIXTURE_TS.to_string()),
        (
            "x-fal-webhook-signature".to_owned(),
            hex::encode(pair.sign(message.as_bytes())),
        ),
    ]
}

/// fal's delivery, signed with the private key of a public key the source
/// lists, is queued with its timestamp; a changed body is refused.
#[tokio::test]
async fn a_fal_delivery_is_verified_against_the_listed_public_key_and_queued() {
    let (pair, x) = fal_key(6);
    let doc = serde_json::json!({"sources": {"fal": {"scheme": "fal", "public_keys": [x]}}});
    let loader = Arc::new(FileSources::new(temp_file("fal-sources", &doc.to_string())));
    let h = harness_with(loader, None, FIXTURE_TS + 5).await;
    let body = br#"{"request_id":"req-1","status":"OK","payload":{}}"#.to_vec();
    let headers = fal_headers(&pair, "req-1", &body);
    let envelope = queued_then_refused_changed(&h, "/webhooks/fal", &headers, body).await;
    assert_eq!(envelope.signed_at, Some(FIXTURE_TS));
}

/// A JWKS publisher on real HTTP: it serves the document a test sets, or
/// answers 503 while there is none, and counts the requests it gets.
struct KeySetPublisher {
    url: String,
    document: Arc<std::sync::Mutex<Option<String>>>,
    requests: Arc<std::sync::atomic::AtomicUsize>,
}

impl KeySetPublisher {
    async fn start() -> Self {
        let document: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
        let requests: Arc<std::sync::atomic::AtomicUsize> = Arc::default();
        let (served, counted) = (document.clone(), requests.clone());
        let app = axum::Router::new().route(
            "/.well-known/jwks.json",
            axum::routing::get(move || {
                let (served, counted) = (served.clone(), counted.clone());
                async move {
                    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    match served.lock().expect("document").clone() {
                        Some(doc) => (axum::http::StatusCode::OK, doc),
                        None => (axum::http::StatusCode::SERVICE_UNAVAILABLE, "down".to_owned()),
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/.well-known/jwks.json", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            url,
            document,
            requests,
        }
    }

    /// Publishes these keys (a JWK `x` each), as fal's JWKS lists them; None: down.
    fn publish(&self, xs: Option<&[&str]>) {
        let doc = xs.map(|xs| {
            let keys: Vec<Value> = xs
                .iter()
                .map(|x| serde_json::json!({"kty": "OKP", "crv": "Ed25519", "use": "sig", "x": x}))
                .collect();
            serde_json::json!({"keys": keys}).to_string()
        });
        *self.document.lock().expect("document") = doc;
    }

    fn requests(&self) -> usize {
        self.requests.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// A receiver for one fal source with this key set, fetching again at
    /// most every `min_refetch`.
    async fn receiver(&self, min_refetch: Duration) -> Harness {
        let doc = serde_json::json!({"sources": {"fal": {"scheme": "fal", "jwks_url": self.url}}});
        let loader = Arc::new(FileSources::new(temp_file("fal-jwks-sources", &doc.to_string())));
        let fetcher = Arc::new(jobhook::adapters::key_set_http::HttpKeySets::new(Duration::from_secs(
            3,
        )));
        let key_sets = KeySetCache::with_timing(fetcher, Duration::from_secs(3600), min_refetch);
        harness_with_key_sets(loader, key_sets, None, FIXTURE_TS + 5).await
    }
}

/// Posts a fal delivery signed by `pair`; its status and how many messages it queued.
async fn post_fal(h: &Harness, pair: &ring::signature::Ed25519KeyPair, request_id: &str) -> (StatusCode, usize) {
    let body = format!(r#"{{"request_id":"{request_id}","status":"OK","payload":{{}}}}"#).into_bytes();
    let headers = fal_headers(pair, request_id, &body);
    let response = h
        .receiver
        .handle(raw_request("POST", "/webhooks/fal", &headers, body))
        .await;
    (response.status(), sqs::drain(&h.sqs, &h.queue_url, 1).await.len())
}

/// While the source's JWKS cannot be fetched, a delivery is neither accepted
/// nor refused as forged: 503, so that fal retries it; once the publisher is
/// back, the same delivery is queued.
#[tokio::test]
async fn a_jwks_endpoint_that_is_down_is_answered_503_not_401_or_202() {
    let (pair, x) = fal_key(7);
    let publisher = KeySetPublisher::start().await;
    let h = publisher.receiver(Duration::ZERO).await;
    publisher.publish(None);
    let (status, queued) = post_fal(&h, &pair, "req-down").await;
    assert_eq!((status, queued), (StatusCode::SERVICE_UNAVAILABLE, 0));
    publisher.publish(Some(&[&x]));
    assert_eq!(post_fal(&h, &pair, "req-down").await, (StatusCode::ACCEPTED, 1));
    let response = h
        .receiver
        .handle(raw_request(
            "POST",
            "/webhooks/fal",
            &fal_headers(&pair, "r", b"{}"),
            b"{}x".to_vec(),
        ))
        .await;
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "a changed body, with the set at hand"
    );
}

/// fal rotates its key: the receiver that cached the old set fetches the
/// new one when no cached key verifies, without a restart, and the retired
/// key stops verifying. A publisher that is down at that moment gets a 503.
#[tokio::test]
async fn a_rotated_key_set_is_picked_up_without_a_restart() {
    let ((old, old_x), (new, new_x), (next, _)) = (fal_key(8), fal_key(9), fal_key(10));
    let publisher = KeySetPublisher::start().await;
    publisher.publish(Some(&[&old_x]));
    let h = publisher.receiver(Duration::ZERO).await;
    assert_eq!(post_fal(&h, &old, "req-old").await, (StatusCode::ACCEPTED, 1));
    assert_eq!(publisher.requests(), 1);
    assert_eq!(post_fal(&h, &old, "req-old-2").await, (StatusCode::ACCEPTED, 1));
    assert_eq!(publisher.requests(), 1, "the cached set verifies: no fetch");

    publisher.publish(Some(&[&new_x]));
    assert_eq!(post_fal(&h, &new, "req-new").await, (StatusCode::ACCEPTED, 1));
    assert_eq!(publisher.requests(), 2);
    assert_eq!(post_fal(&h, &old, "req-retired").await, (StatusCode::UNAUTHORIZED, 0));

    publisher.publish(None);
    assert_eq!(
        post_fal(&h, &next, "req-next").await,
        (StatusCode::SERVICE_UNAVAILABLE, 0)
    );
}

/// Deliveries no key verifies cost at most one fetch a minute: a stream of
/// forgeries cannot become a stream of requests to the publisher.
#[tokio::test]
async fn forged_deliveries_fetch_the_key_set_at_most_once_a_minute() {
    let ((genuine, x), (forger, _)) = (fal_key(11), fal_key(12));
    let publisher = KeySetPublisher::start().await;
    publisher.publish(Some(&[&x]));
    let h = publisher.receiver(Duration::from_secs(60)).await;
    assert_eq!(post_fal(&h, &genuine, "req-1").await, (StatusCode::ACCEPTED, 1));
    for i in 0..5 {
        let (status, queued) = post_fal(&h, &forger, &format!("forged-{i}")).await;
        assert_eq!((status, queued), (StatusCode::UNAUTHORIZED, 0));
    }
    assert_eq!(publisher.requests(), 1);
}

/// An unsigned source (RunPod's) takes a delivery only with its URL token:
/// without it, or with another, 401 and nothing queued; with it, queued as
/// unsigned (for the processor to read the job from the API), and the token
/// is nowhere in what is queued. Over the source's rate, 429.
#[tokio::test]
async fn an_unsigned_source_without_its_url_token_gets_401_and_with_it_is_queued_within_its_rate() {
    const TOKEN: &str = "9b7c5a3e1f0d8b6a4c2e0f9d7b5a3c1e";
    let doc = serde_json::json!({"sources": {"rp": {"scheme": "unsigned", "url_token": [TOKEN], "provider": "runpod",
        "rate_limit_per_second": 2}}});
    let loader = Arc::new(FileSources::new(temp_file("unsigned-sources", &doc.to_string())));
    let h = harness_with(loader, None, FIXTURE_TS + 5).await;
    let body = br#"{"id":"j-1","status":"COMPLETED"}"#.to_vec();
    let post = |path: String| {
        let body = body.clone();
        let h = &h;
        async move {
            let response = h.receiver.handle(raw_request("POST", &path, &[], body)).await;
            (
                response.status(),
                json_of(&response)["reason"].as_str().map(str::to_owned),
            )
        }
    };
    for (path, reason) in [
        ("/webhooks/rp".to_owned(), "missing_url_token"),
        ("/webhooks/rp?token=".to_owned(), "missing_url_token"),
        ("/webhooks/rp?tok=x".to_owned(), "missing_url_token"),
        (format!("/webhooks/rp?token={}", &TOKEN[1..]), "url_token_mismatch"),
        (format!("/webhooks/rp?token={TOKEN}x"), "url_token_mismatch"),
    ] {
        assert_eq!(
            post(path.clone()).await,
            (StatusCode::UNAUTHORIZED, Some(reason.to_owned())),
            "{path}"
        );
    }
    assert!(sqs::drain(&h.sqs, &h.queue_url, 1).await.is_empty());

    // A burst of twice the rate is taken, then 429 until it refills.
    for i in 0..4 {
        let (status, _) = post(format!("/webhooks/rp?a={i}&token={TOKEN}")).await;
        assert_eq!(status, StatusCode::ACCEPTED, "delivery {i}");
    }
    let (status, reason) = post(format!("/webhooks/rp?token={TOKEN}")).await;
    assert_eq!(
        (status, reason.as_deref()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited"))
    );
    let queued = sqs::drain(&h.sqs, &h.queue_url, 4).await;
    assert_eq!(queued.len(), 4);
    let text = queued[0].body.as_deref().expect("body");
    let envelope = Envelope::from_json(text).expect("envelope");
    assert_eq!(
        (envelope.scheme.as_str(), envelope.body_bytes().expect("body")),
        ("unsigned", body.clone())
    );
    assert!(!text.contains(TOKEN), "the token is not queued");
}

/// ElevenLabs' and Cloudflare Stream's deliveries, signed as their docs
/// say, are queued; a changed body is refused.
#[tokio::test]
async fn elevenlabs_and_cloudflare_stream_deliveries_are_verified_and_queued() {
    let doc = serde_json::json!({"sources": {
        "el": {"scheme": "elevenlabs", "secrets": ["wsec_test"]},
        "cf": {"scheme": "cloudflare-stream", "secrets": ["85011ed3a913c6ad5f9cf6c5573cc0a7"]}}});
    let sources = Sources::parse(&doc.to_string()).expect("sources");
    let loader = Arc::new(FileSources::new(temp_file("hmac-sources", &doc.to_string())));
    let h = harness_with(loader, None, FIXTURE_TS + 5).await;
    for name in ["el", "cf"] {
        let body = br#"{"uid":"v1","status":{"state":"ready"}}"#.to_vec();
        let headers = sign::headers_for(sources.get(name).expect("source"), "unused", FIXTURE_TS, &body);
        let envelope = queued_then_refused_changed(&h, &format!("/webhooks/{name}"), &headers, body).await;
        assert_eq!(envelope.signed_at, Some(FIXTURE_TS), "{name}");
    }
}

/// `body` with `headers` is accepted and queued as it came; the same with
/// one byte of its body changed is refused and queues nothing.
async fn queued_then_refused_changed(h: &Harness, path: &str, headers: &[(String, String)], body: Vec<u8>) -> Envelope {
    let response = h
        .receiver
        .handle(raw_request("POST", path, headers, body.clone()))
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED, "{path}: {:?}", response.body());
    let messages = sqs::drain(&h.sqs, &h.queue_url, 2).await;
    assert_eq!(messages.len(), 1, "{path}");
    let envelope = Envelope::from_json(messages[0].body.as_deref().expect("body")).expect("envelope");
    assert_eq!(envelope.body_bytes().expect("decodes"), body, "{path}");
    let mut changed = body;
    changed[5] ^= 1;
    let response = h.receiver.handle(raw_request("POST", path, headers, changed)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
    assert!(sqs::drain(&h.sqs, &h.queue_url, 1).await.is_empty(), "{path}");
    envelope
}

#[derive(Debug)]
struct RefusingQueue(jobhook::ports::ErrorKind);

#[async_trait::async_trait]
impl jobhook::ports::EventQueue for RefusingQueue {
    async fn enqueue(&self, _: &Envelope) -> Result<(), jobhook::ports::EnqueueError> {
        Err(jobhook::ports::PortError {
            operation: "sqs:SendMessage",
            message: "refused".into(),
            kind: self.0,
            code: None,
        }
        .into())
    }
}

#[tokio::test]
async fn an_enqueue_failure_is_answered_503_unless_sqs_refused_the_message() {
    use jobhook::ports::ErrorKind;
    let mut h = harness().await;
    let cases = [
        (ErrorKind::Transient, StatusCode::SERVICE_UNAVAILABLE, "enqueue_failed"),
        (ErrorKind::Systemic, StatusCode::SERVICE_UNAVAILABLE, "enqueue_failed"),
        (
            ErrorKind::Permanent,
            StatusCode::UNPROCESSABLE_ENTITY,
            "enqueue_rejected",
        ),
    ];
    for (kind, status, reason) in cases {
        h.receiver.queue = Arc::new(RefusingQueue(kind));
        let response = h.receiver.handle(load_event("http-api-v2.json")).await;
        assert_eq!(response.status(), status, "{kind:?}");
        assert_eq!(json_of(&response)["reason"], reason, "{kind:?}");
    }
}

#[tokio::test]
async fn rejected_deliveries_enqueue_nothing() {
    let h = harness().await;
    let body = br#"{"id":"evt_1"}"#.to_vec();
    let good = sign::headers_for(&acme_source(), "msg_reject", FIXTURE_TS, &body);
    let stale_ts = FIXTURE_TS - 3600;
    let stale = sign::headers_for(&acme_source(), "msg_reject", stale_ts, &body);
    let mut bare = good.clone();
    bare[2].1 = "v1,".into();

    let cases: Vec<(Request, StatusCode, &str)> = vec![
        (
            raw_request("POST", "/webhooks/acme", &good, b"{\"id\":\"evt_2\"}".to_vec()),
            StatusCode::UNAUTHORIZED,
            "signature_mismatch",
        ),
        (
            raw_request("POST", "/webhooks/acme", &stale, body.clone()),
            StatusCode::UNAUTHORIZED,
            "timestamp_out_of_tolerance",
        ),
        (
            raw_request("POST", "/webhooks/acme", &bare, body.clone()),
            StatusCode::UNAUTHORIZED,
            "malformed_signature",
        ),
        (
            raw_request("POST", "/webhooks/acme", &[], body.clone()),
            StatusCode::UNAUTHORIZED,
            "missing_webhook_id",
        ),
        (
            raw_request("POST", "/webhooks/nobody", &good, body.clone()),
            StatusCode::NOT_FOUND,
            "unknown_source",
        ),
        (
            raw_request("POST", "/hooks/acme", &good, body.clone()),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            raw_request("GET", "/webhooks/acme", &good, Vec::new()),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            raw_request("POST", "/webhooks/acme", &good, vec![b' '; 262_145]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        ),
    ];
    for (request, status, reason) in cases {
        let response = h.receiver.handle(request).await;
        assert_eq!(response.status(), status, "{reason}");
        assert_eq!(
            json_of(&response),
            serde_json::json!({"status": "rejected", "reason": reason})
        );
    }
    let response = h
        .receiver
        .handle(raw_request("GET", "/webhooks/acme", &[], Vec::new()))
        .await;
    assert_eq!(
        response.headers().get("allow").map(|v| v.as_bytes()),
        Some(&b"POST"[..])
    );

    assert!(
        sqs::drain(&h.sqs, &h.queue_url, 1).await.is_empty(),
        "nothing rejected was enqueued"
    );
}

#[tokio::test]
async fn an_sqs_failure_answers_503_so_the_provider_retries() {
    let missing = format!(
        "{}/123456789012/{}",
        std::env::var("AWS_ENDPOINT_URL").expect("endpoint"),
        jobhook_tests::unique_name("missing")
    );
    let loader = Arc::new(FileSources::new(fixture_path("sources.fixtures.json")));
    let h = harness_with(loader, Some(missing), FIXTURE_TS + 5).await;
    let response = h.receiver.handle(load_event("http-api-v2.json")).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        json_of(&response),
        serde_json::json!({"status": "unavailable", "reason": "enqueue_failed"})
    );
}

#[tokio::test]
async fn sources_come_from_secrets_manager_and_a_rotated_secret_takes_effect_after_the_ttl() {
    let config = aws().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&config);
    let secret_id = jobhook_tests::unique_name("sources");
    let doc =
        |secret: &str| serde_json::json!({"sources": {"rot": {"scheme": "github", "secrets": [secret]}}}).to_string();
    secrets
        .create_secret()
        .name(&secret_id)
        .secret_string(doc("old-secret"))
        .send()
        .await
        .expect("create secret");

    let loader = Arc::new(SecretsManagerSources::new(secrets.clone(), &secret_id));
    let mut h = harness_with(loader.clone(), None, FIXTURE_TS).await;
    h.receiver.sources = SourcesCache::new(loader, Duration::ZERO);

    let body = b"{\"rotated\":true}".to_vec();
    let sign_with = |secret: &str| {
        let source = Sources::parse(&doc(secret))
            .expect("doc")
            .get("rot")
            .expect("rot")
            .clone();
        sign::headers_for(&source, "", 0, &body)
    };
    let response = h
        .receiver
        .handle(raw_request(
            "POST",
            "/webhooks/rot",
            &sign_with("new-secret"),
            body.clone(),
        ))
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "new secret not active yet");

    secrets
        .put_secret_value()
        .secret_id(&secret_id)
        .secret_string(doc("new-secret"))
        .send()
        .await
        .expect("rotate");
    let response = h
        .receiver
        .handle(raw_request(
            "POST",
            "/webhooks/rot",
            &sign_with("new-secret"),
            body.clone(),
        ))
        .await;
    assert_eq!(
        response.status(),
        StatusCode::ACCEPTED,
        "rotated secret accepted without a restart"
    );
    assert_eq!(sqs::drain(&h.sqs, &h.queue_url, 2).await.len(), 1);
}

#[tokio::test]
async fn a_refresh_that_fails_keeps_serving_the_last_good_document() {
    let path = temp_file("sources", &fixture("sources.fixtures.json"));
    let cache = SourcesCache::new(Arc::new(FileSources::new(&path)), Duration::ZERO);
    let good = Sources::parse(&fixture("sources.fixtures.json"))
        .expect("fixture")
        .len();
    assert_eq!(cache.get().await.expect("loads").len(), good);
    std::fs::write(&path, r#"{"sources": {"acme": {"scheme": "github"}}}"#).expect("write");
    assert_eq!(cache.get().await.expect("stale document served").len(), good);
    let fresh = SourcesCache::new(Arc::new(FileSources::new(&path)), Duration::ZERO);
    let error = fresh.get().await.expect_err("never loaded a good one");
    assert!(
        error.to_string().contains("\"acme\"") && error.to_string().contains("secrets"),
        "{error}"
    );
    std::fs::remove_file(path).ok();
}

#[tokio::test]
async fn opusclip_and_header_token_deliveries_are_verified_and_queued() {
    let doc = serde_json::json!({"sources": {
        "opus": {"scheme": "opusclip", "secrets": ["sk-opus-integration"]},
        "aai": {"scheme": "header-token", "header": "x-webhook-token", "secrets": ["aai-shared-token"]}}});
    let path = temp_file("new-schemes", &doc.to_string());
    let h = harness_with(Arc::new(FileSources::new(&path)), None, FIXTURE_TS + 5).await;
    let sources = Sources::parse(&doc.to_string()).expect("sources");
    for name in ["opus", "aai"] {
        let body =
            format!(r#"{{"projectId":"p-{name}","transcript_id":"t-{name}","status":"completed"}}"#).into_bytes();
        let good = sign::headers_for(sources.get(name).expect("source"), "ignored", FIXTURE_TS, &body);
        let path = format!("/webhooks/{name}");
        let response = h.receiver.handle(raw_request("POST", &path, &good, body.clone())).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED, "{name}: {:?}", response.body());
        assert_eq!(
            json_of(&response)["event_id"],
            sha256_hex(&body),
            "{name}: no delivery id, so the body's hash"
        );
        let mut tampered = body.clone();
        tampered.push(b' ');
        let refused = h.receiver.handle(raw_request("POST", &path, &good, tampered)).await;
        let expected = if name == "aai" {
            StatusCode::ACCEPTED
        } else {
            StatusCode::UNAUTHORIZED
        };
        assert_eq!(
            refused.status(),
            expected,
            "{name}: a header token does not cover the body"
        );
    }
    let queued = sqs::drain(&h.sqs, &h.queue_url, 2).await;
    let schemes: Vec<String> = queued
        .iter()
        .map(|m| Envelope::from_json(m.body().expect("body")).expect("envelope").scheme)
        .collect();
    assert!(
        schemes.contains(&"opusclip".to_owned()) && schemes.contains(&"header-token".to_owned()),
        "{schemes:?}"
    );
}
