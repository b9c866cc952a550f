//! Property-based fuzzing of every parser that meets outside input: the
//! signature headers, the queue envelope, the generic payload and the sources
//! document. Inputs are arbitrary bytes and structured generators that stay
//! close to the real grammar (where a parser's interesting branches are).
//!
//! Each target runs 256 cases in `cargo test`. `make fuzz` sets
//! `JOBHOOK_FUZZ_SECS`, and each target then runs for that long with fresh
//! random seeds, printing how many cases ran. (No nightly toolchain can be
//! had here, so cargo-fuzz's instrumented fuzzing is not used.)

use std::cell::Cell;
use std::time::Instant;

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Value};

use super::envelope::{text_safe, Envelope};
use super::event::job_event_from_envelope;
use super::provider::Generic;
use super::signature::{sign, verify};
use super::sources::Sources;
use base64::engine::general_purpose::STANDARD as BASE64;

/// Runs `check` on values of `strategy`: 256 cases, or for
/// `JOBHOOK_FUZZ_SECS` seconds when set. Panics (with proptest's shrunk
/// input) on the first failing case; a panic inside `check` is a failure.
/// `check` says whether the parser accepted the input, so the printed count
/// shows the generators reach both the accepting and the refusing paths.
fn fuzz<S>(name: &str, strategy: S, check: impl Fn(S::Value) -> Result<bool, TestCaseError>)
where
    S: Strategy,
    S::Value: std::fmt::Debug,
{
    let budget = std::env::var("JOBHOOK_FUZZ_SECS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok());
    let started = Instant::now();
    let cases = Cell::new(0u64);
    let accepted = Cell::new(0u64);
    loop {
        // A new runner per round: a fresh random seed each time.
        let mut runner = TestRunner::new(Config {
            cases: 256,
            failure_persistence: None,
            ..Config::default()
        });
        let result = runner.run(&strategy, |value| {
            cases.set(cases.get() + 1);
            let ok = check(value)?;
            accepted.set(accepted.get() + u64::from(ok));
            Ok(())
        });
        if let Err(error) = result {
            panic!("fuzz {name}: {error}");
        }
        if budget.is_none_or(|secs| started.elapsed().as_secs_f64() >= secs) {
            break;
        }
    }
    println!(
        "fuzz {name}: {} cases ({} accepted) in {:.1} s, no failure",
        cases.get(),
        accepted.get(),
        started.elapsed().as_secs_f64()
    );
}

const MARKER: &str = "SECRETMARKER";

fn sources_doc() -> Sources {
    Sources::parse(
        &json!({"sources": {
            "sw": {"scheme": "standard-webhooks", "secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", v1a_whpk()]},
            "st": {"scheme": "stripe", "header": "mux-signature", "secrets": [format!("whsec_{MARKER}")]},
            "gh": {"scheme": "github", "secrets": [MARKER]},
            "op": {"scheme": "opusclip", "secrets": [format!("sk-{MARKER}")]},
            "ht": {"scheme": "header-token", "header": "x-webhook-token", "secrets": [format!("tok-{MARKER}")]},
            "el": {"scheme": "elevenlabs", "secrets": [format!("wsec_{MARKER}")]},
            "cf": {"scheme": "cloudflare-stream", "secrets": [MARKER]},
            "fal": {"scheme": "fal", "public_keys": [fal_jwk_x()]}}})
        .to_string(),
    )
    .expect("fuzz sources")
}

/// The fuzz's Ed25519 key pair, for Standard Webhooks `v1a`.
fn v1a_key_pair() -> ring::signature::Ed25519KeyPair {
    ring::signature::Ed25519KeyPair::from_seed_unchecked(&[3u8; 32]).expect("a 32-byte seed")
}

/// The fuzz's fal key, as fal's JWKS lists it (`x`, base64url).
fn fal_jwk_x() -> String {
    use base64::Engine as _;
    use ring::signature::KeyPair;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v1a_key_pair().public_key().as_ref())
}

fn v1a_whpk() -> String {
    use base64::Engine as _;
    use ring::signature::KeyPair;
    format!(
        "whpk_{}",
        base64::engine::general_purpose::STANDARD.encode(v1a_key_pair().public_key().as_ref())
    )
}

/// Header values close to each scheme's grammar, and junk.
fn signature_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..120),
        "v1,[A-Za-z0-9+/=]{0,60}( v1,[A-Za-z0-9+/=]{0,60}){0,3}".prop_map(String::into_bytes),
        "(v1a?,[A-Za-z0-9+/=]{0,90} ?){0,3}".prop_map(String::into_bytes),
        "((t|time)=-?[0-9]{0,12}|(v1|v0|sig1)=[0-9a-f]{0,70}|[a-z0]=?,?){0,6}".prop_map(String::into_bytes),
        "sha256=[0-9a-fA-F]{0,70}".prop_map(String::into_bytes),
        "[0-9a-f]{0,130}".prop_map(String::into_bytes),
        "-?[0-9]{0,20}".prop_map(String::into_bytes),
    ]
}

#[test]
fn fuzz_signature_headers_never_panic_and_never_verify_unsigned_input() {
    let sources = sources_doc();
    let names = [
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "svix-id",
        "svix-timestamp",
        "svix-signature",
        "mux-signature",
        "x-hub-signature-256",
        "x-opus-signature",
        "x-opus-salt",
        "x-opus-timestamp",
        "x-webhook-token",
        "elevenlabs-signature",
        "x-fal-webhook-request-id",
        "x-fal-webhook-user-id",
        "x-fal-webhook-timestamp",
        "x-fal-webhook-signature",
    ];
    let headers = proptest::collection::vec((0..names.len(), signature_value()), 0..8);
    let body = proptest::collection::vec(any::<u8>(), 0..256);
    fuzz(
        "signature headers",
        (0..8usize, headers, body, any::<i64>()),
        |(s, headers, body, now)| {
            let source = sources
                .get(["sw", "st", "gh", "op", "ht", "el", "cf", "fal"][s])
                .expect("source");
            let mut map = HeaderMap::new();
            for (i, value) in headers {
                if let Ok(value) = HeaderValue::from_bytes(&value) {
                    map.append(HeaderName::from_static(names[i]), value);
                }
            }
            // Random headers are never a valid signature by chance.
            prop_assert!(verify(source, &map, Bytes::from(body), now).is_err());
            Ok(false)
        },
    );
}

/// A delivery `signed` (its headers for a body at a time) verifies, and the
/// same with any one byte of its body changed does not.
fn any_changed_byte_is_rejected(
    name: &str,
    source: &super::sources::SourceConfig,
    signed: impl Fn(&[u8], i64) -> Vec<(&'static str, String)>,
) {
    let body = proptest::collection::vec(any::<u8>(), 1..256);
    fuzz(
        name,
        (
            body,
            any::<prop::sample::Index>(),
            1u8..=255,
            1_600_000_000i64..1_900_000_000,
        ),
        |(body, at, flip, now)| {
            let map: HeaderMap = signed(&body, now)
                .into_iter()
                .map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_str(&v).expect("value")))
                .collect();
            prop_assert!(verify(source, &map, Bytes::from(body.clone()), now).is_ok());
            let mut changed = body;
            let i = at.index(changed.len());
            changed[i] ^= flip;
            prop_assert!(verify(source, &map, Bytes::from(changed), now).is_err());
            Ok(true)
        },
    );
}

#[test]
fn fuzz_any_change_to_a_v1a_signed_delivery_is_rejected() {
    use base64::Engine as _;
    let sources = sources_doc();
    let pair = v1a_key_pair();
    any_changed_byte_is_rejected(
        "v1a signed delivery, one byte changed",
        sources.get("sw").expect("source"),
        |body, now| {
            let message = [format!("msg_fuzz.{now}.").into_bytes(), body.to_vec()].concat();
            let signature = base64::engine::general_purpose::STANDARD.encode(pair.sign(&message).as_ref());
            vec![
                ("webhook-id", "msg_fuzz".to_owned()),
                ("webhook-timestamp", now.to_string()),
                ("webhook-signature", format!("v1a,{signature}")),
            ]
        },
    );
}

#[test]
fn fuzz_any_change_to_a_fal_signed_delivery_is_rejected() {
    let sources = sources_doc();
    let pair = v1a_key_pair();
    any_changed_byte_is_rejected(
        "fal signed delivery, one byte changed",
        sources.get("fal").expect("source"),
        |body, now| {
            let message = format!(
                "req_fuzz\nuser_fuzz\n{now}\n{}",
                crate::domain::digest::sha256_hex(body)
            );
            vec![
                ("x-fal-webhook-request-id", "req_fuzz".to_owned()),
                ("x-fal-webhook-user-id", "user_fuzz".to_owned()),
                ("x-fal-webhook-timestamp", now.to_string()),
                ("x-fal-webhook-signature", hex::encode(pair.sign(message.as_bytes()))),
            ]
        },
    );
}

#[test]
fn fuzz_any_change_to_a_signed_delivery_is_rejected() {
    let sources = sources_doc();
    let body = proptest::collection::vec(any::<u8>(), 1..256);
    fuzz(
        "signed delivery, one byte changed",
        (
            // Every scheme that signs the body; a header token does not, by design.
            0..6usize,
            body,
            any::<prop::sample::Index>(),
            1u8..=255,
            1_600_000_000i64..1_900_000_000,
        ),
        |(s, body, at, flip, now)| {
            let source = sources.get(["sw", "st", "gh", "op", "el", "cf"][s]).expect("source");
            let signed = sign::headers_for(source, "msg_fuzz", now, &body);
            let map: HeaderMap = signed
                .iter()
                .map(|(k, v)| {
                    (
                        HeaderName::from_bytes(k.as_bytes()).expect("name"),
                        HeaderValue::from_str(v).expect("value"),
                    )
                })
                .collect();
            prop_assert!(verify(source, &map, Bytes::from(body.clone()), now).is_ok());
            let mut changed = body;
            let i = at.index(changed.len());
            changed[i] ^= flip;
            prop_assert!(verify(source, &map, Bytes::from(changed), now).is_err());
            Ok(true)
        },
    );
}

/// JSON values of bounded size and depth, for the fields parsers look at.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        (0u64..=101).prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
        "(job|evt|msg)_[a-z0-9]{0,8}".prop_map(Value::from),
        Just(Value::from("x".repeat(300))),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn maybe(value: impl Strategy<Value = Value>) -> impl Strategy<Value = Option<Value>> {
    proptest::option::weighted(0.8, value)
}

/// `object` with each field that is present set.
fn with_fields<'a>(mut object: Value, fields: impl IntoIterator<Item = (&'a str, Option<Value>)>) -> Value {
    for (name, value) in fields {
        if let Some(value) = value {
            object[name] = value;
        }
    }
    object
}

/// Mostly a short string, sometimes any JSON.
fn stringish() -> impl Strategy<Value = Value> {
    prop_oneof![4 => "[ -~]{0,24}".prop_map(Value::from), 1 => json_value()]
}

/// Objects shaped like an envelope, each field mostly of its type, sometimes
/// of any type or absent.
fn envelope_like() -> impl Strategy<Value = String> {
    let version = prop_oneof![4 => Just(json!(1)), 1 => json_value()];
    let base64 = prop_oneof![4 => any::<bool>().prop_map(Value::from), 1 => json_value()];
    let headers = prop_oneof![
        3 => proptest::collection::btree_map("[a-z-]{1,12}", "[ -~]{0,20}", 0..3)
            .prop_map(|m| json!(m)),
        1 => json_value(),
    ];
    (
        version,
        maybe(stringish()),
        maybe(stringish()),
        maybe(prop_oneof!["[A-Za-z0-9+/=]{0,40}".prop_map(Value::from), stringish()]),
        maybe(base64),
        maybe(headers),
        maybe(stringish()),
    )
        .prop_map(|(v, source, event_id, body, base64, headers, webhook_id)| {
            let doc = json!({"v": v, "received_at": "2026-05-13T12:00:05.123Z", "scheme": "github"});
            with_fields(
                doc,
                [
                    ("source", source),
                    ("event_id", event_id),
                    ("body", body),
                    ("body_base64", base64),
                    ("headers", headers),
                    ("webhook_id", webhook_id),
                ],
            )
            .to_string()
        })
}

#[test]
fn fuzz_envelopes_parse_or_fail_cleanly_and_round_trip() {
    let text = prop_oneof![".{0,200}".boxed(), envelope_like().boxed()];
    fuzz("envelope", text, |text| {
        let Ok(envelope) = Envelope::from_json(&text) else {
            return Ok(false);
        };
        // Text is carried as it is; base64 decodes exactly when it is
        // canonical, so what decodes encodes back to the same text.
        match envelope.body_bytes() {
            Ok(bytes) if envelope.body_base64 => prop_assert_eq!(BASE64.encode(&bytes), envelope.body.clone()),
            Ok(bytes) => prop_assert_eq!(bytes, envelope.body.clone().into_bytes()),
            Err(_) => prop_assert!(envelope.body_base64, "text always decodes"),
        }
        let again = Envelope::from_json(&envelope.to_json()).expect("what parsed re-parses");
        prop_assert_eq!(again, envelope);
        Ok(true)
    });
}

#[test]
fn fuzz_any_verified_body_is_carried_byte_for_byte_in_a_message_sqs_accepts() {
    let sources = sources_doc();
    let source = sources.get("gh").expect("gh").clone();
    let body = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..2048).boxed(),
        ".{0,300}".prop_map(String::into_bytes).boxed(),
        proptest::collection::vec(prop_oneof![Just(0x01u8), Just(b'"'), Just(b'\\'), Just(b'a')], 0..2048).boxed(),
    ];
    fuzz("envelope body encoding", body, |body| {
        let mut headers = HeaderMap::new();
        let signature = sign::github(&source.keys[0], &body);
        headers.insert("x-hub-signature-256", HeaderValue::from_str(&signature).expect("value"));
        let verified = verify(&source, &headers, Bytes::from(body.clone()), 0).expect("signed");
        let envelope = Envelope::from_verified(&verified, "2026-05-13T12:00:05.123Z".into());
        let json = envelope.to_json();
        prop_assert!(json.chars().all(text_safe), "a character a queue refuses");
        // Never more than base64's 4/3 plus the envelope's own fields.
        prop_assert!(json.len() <= body.len().div_ceil(3) * 4 + 400);
        let back = Envelope::from_json(&json).expect("parses");
        prop_assert_eq!(back.body_bytes().expect("decodes"), body);
        Ok(!envelope.body_base64)
    });
}

/// Bodies shaped like a generic webhook, each field of any type or absent.
fn generic_like() -> impl Strategy<Value = Vec<u8>> {
    let kind = prop_oneof![
        2 => Just(json!("job.started")),
        2 => Just(json!("job.progress")),
        2 => Just(json!("job.completed")),
        2 => Just(json!("job.failed")),
        1 => json_value(),
    ];
    let progress = prop_oneof![3 => (0u64..=100).prop_map(Value::from), 1 => json_value()];
    let error = prop_oneof![
        2 => stringish(),
        1 => Just(json!({"code": "E", "message": "failed"})),
        1 => json_value(),
    ];
    let time = prop_oneof![
        Just(json!("2026-05-13T12:00:05Z")),
        "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]{0,15}(Z|[+-][0-9]{2}:[0-9]{2})?".prop_map(Value::from),
        json_value(),
    ];
    (
        maybe(stringish()),
        maybe(kind),
        maybe(time),
        maybe(stringish()),
        maybe(progress),
        maybe(stringish()),
        maybe(error),
    )
        .prop_map(|(id, kind, created_at, job_id, progress, output_url, error)| {
            let data = with_fields(
                json!({}),
                [
                    ("job_id", job_id),
                    ("progress", progress),
                    ("output_url", output_url),
                    ("error", error),
                ],
            );
            let body = with_fields(
                json!({"data": data}),
                [("id", id), ("type", kind), ("created_at", created_at)],
            );
            body.to_string().into_bytes()
        })
}

/// An envelope carrying `body` as text, as the receiver queues it.
fn text_envelope(body: String) -> Envelope {
    Envelope {
        v: 1,
        source: "acme".into(),
        event_id: "e".into(),
        received_at: "2026-05-13T12:00:05.123Z".into(),
        scheme: "github".into(),
        webhook_id: None,
        signed_at: None,
        headers: Default::default(),
        body,
        body_base64: false,
    }
}

#[test]
fn fuzz_generic_payloads_give_a_valid_event_or_a_clear_error() {
    let body = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256).boxed(),
        generic_like().boxed()
    ];
    fuzz("generic payload", body, |body| {
        match job_event_from_envelope(&text_envelope(String::from_utf8_lossy(&body).into_owned()), &Generic) {
            Ok(super::event::WebhookEvent { event, .. }) => {
                prop_assert!(!event.job_id.is_empty() && event.job_id.len() <= 256);
                prop_assert!(event.progress.is_none_or(|p| p <= 100));
                prop_assert!(!event.event_id.is_empty());
                Ok(true)
            }
            Err(error) => {
                // Safe for a log line: short, and no control character of
                // the input copied into it.
                let message = error.to_string();
                prop_assert!(message.len() <= 200, "{message}");
                prop_assert!(!message.chars().any(char::is_control), "{message:?}");
                Ok(false)
            }
        }
    });
}

/// Documents close to the real schema, with a recognizable marker in every
/// secret and token, so an error that quotes one is caught.
fn sources_like() -> impl Strategy<Value = String> {
    let scheme = prop_oneof![
        Just(json!("standard-webhooks")),
        Just(json!("stripe")),
        Just(json!("github")),
        Just(json!("opusclip")),
        Just(json!("header-token")),
        json_value()
    ];
    let secret = prop_oneof![
        Just(format!("whsec_{MARKER}AAAAAAAAAAAAAAAAAAAA")),
        Just(format!("whsec_{MARKER}")),
        Just(format!("{MARKER}-raw")),
        Just(format!("whsec_{MARKER}!!not base64")),
    ];
    let secrets = prop_oneof![
        proptest::collection::vec(secret.prop_map(Value::from), 0..3).prop_map(Value::from),
        Just(json!(MARKER)),
    ];
    let api = prop_oneof![
        Just(json!({"base_url": "https://api.example.com", "token": MARKER})),
        Just(json!({"base_url": MARKER, "token": MARKER})),
        Just(json!({"token": MARKER, "extra": MARKER})),
        json_value(),
    ];
    let name = prop_oneof!["[a-z_-]{1,10}", ".{0,70}"];
    let entry = (
        maybe(scheme),
        maybe(secrets),
        maybe(json_value()),
        maybe(json_value()),
        maybe(json_value()),
        maybe(api),
        proptest::option::weighted(0.2, "[a-z_]{1,10}"),
    )
        .prop_map(|(scheme, secrets, tolerance, header, provider, api, unknown)| {
            let mut entry = with_fields(
                json!({}),
                [
                    ("scheme", scheme),
                    ("secrets", secrets),
                    ("tolerance_secs", tolerance),
                    ("header", header),
                    ("provider", provider),
                    ("api", api),
                ],
            );
            if let Some(unknown) = unknown {
                entry[unknown] = json!(MARKER);
            }
            entry
        });
    proptest::collection::btree_map(name, entry, 0..4)
        .prop_map(|sources| json!({"sources": Value::Object(sources.into_iter().collect())}).to_string())
}

#[test]
fn fuzz_sources_documents_fail_without_quoting_a_secret() {
    let text = prop_oneof![".{0,200}".boxed(), sources_like().boxed()];
    fuzz("sources document", text, |text| match Sources::parse(&text) {
        Ok(sources) => {
            let shown = format!("{sources:?}");
            prop_assert!(!shown.contains(MARKER), "Debug shows a secret: {}", shown);
            Ok(true)
        }
        Err(error) => {
            let message = error.to_string();
            prop_assert!(!message.contains(MARKER), "error quotes a secret: {}", message);
            Ok(false)
        }
    });
}

#[test]
fn deeply_nested_input_is_an_error_not_a_stack_overflow() {
    let deep = "[".repeat(200_000);
    assert!(Envelope::from_json(&deep).is_err());
    assert!(Sources::parse(&deep).is_err());
    assert!(job_event_from_envelope(&text_envelope(format!("{{\"data\":{deep}")), &Generic).is_err());
}

/// Every provider's documented bodies, as the profiles' fuzz seeds.
fn provider_fixtures() -> Vec<(String, Vec<u8>)> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../events/providers");
    let mut out = Vec::new();
    for dir in std::fs::read_dir(root).expect("events/providers") {
        let dir = dir.expect("entry").path();
        for file in std::fs::read_dir(&dir).expect("provider dir") {
            let file = file.expect("entry").path();
            if file.extension().is_some_and(|e| e == "json") {
                out.push((
                    dir.file_name().expect("name").to_string_lossy().into_owned(),
                    std::fs::read(&file).expect("fixture"),
                ));
            }
        }
    }
    out.sort();
    out
}

fn check_result(result: Option<&str>) -> Result<(), TestCaseError> {
    if let Some(r) = result {
        prop_assert!(
            r.len() <= super::provider::MAX_RESULT_BYTES,
            "result of {} bytes",
            r.len()
        );
        prop_assert!(serde_json::from_str::<Value>(r).is_ok_and(|v| v.is_object()));
    }
    Ok(())
}

#[test]
fn fuzz_every_profile_gives_a_valid_event_or_a_clear_error() {
    let seeds = provider_fixtures();
    assert!(seeds.len() >= 20, "fixtures of every provider are seeds");
    let n = seeds.len();
    // A documented body, then byte flips and a truncation: close to the
    // grammar, where the branches are.
    let input = (
        0..n,
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        proptest::option::of(any::<prop::sample::Index>()),
    );
    fuzz("provider profiles", input, |(i, flips, cut)| {
        let mut body = seeds[i].1.clone();
        for (at, byte) in flips {
            if !body.is_empty() {
                let at = at.index(body.len());
                body[at] = byte;
            }
        }
        if let Some(cut) = cut {
            body.truncate(cut.index(body.len() + 1));
        }
        let mut accepted = false;
        for profile in super::provider::PROFILES {
            let _ = profile.not_a_job_event(&body);
            if let Ok(p) = profile.parse_webhook(&body) {
                accepted = true;
                prop_assert!(!p.job_id.is_empty() && p.job_id.len() <= 256);
                prop_assert!(!p.job_id.chars().any(char::is_control));
                prop_assert!(p.progress.is_none_or(|p| p <= 100));
                prop_assert!(
                    profile.poll_request(&p.job_id).is_ok(),
                    "{} cannot poll {:?}",
                    profile.name(),
                    p.job_id
                );
                check_result(p.result.as_deref())?;
            }
            if let Ok(a) = profile.parse_poll(&body) {
                accepted = true;
                prop_assert!(a.progress.is_none_or(|p| p <= 100));
                check_result(a.result.as_deref())?;
                if profile.follow_up("job", &a).is_some() {
                    if let Ok(b) = profile.parse_follow_up("job", a, &body) {
                        check_result(b.result.as_deref())?;
                    }
                }
            }
        }
        Ok(accepted)
    });
}
