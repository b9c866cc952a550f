//! The receiver: verify on the raw bytes, enqueue, answer 202.
//!
//! It never interprets the payload, so a provider's schema change cannot make
//! it reject a correctly signed delivery.

use std::sync::Arc;

use bytes::Bytes;
use jobhook::clock::{rfc3339, Clock};
use jobhook::domain::signature::verify_with_url_token;
use jobhook::domain::signature::Signing;
use jobhook::key_sets::KeySetCache;
use jobhook::ports::{EnqueueError, ErrorKind, EventQueue};
use jobhook::sources_cache::SourcesCache;
use jobhook::{outcomes, Envelope, SourceConfig, VerifiedWebhook, VerifyError};
use lambda_http::http::{header, Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::json;

#[derive(Debug)]
pub struct Receiver {
    pub sources: SourcesCache,
    /// The key sets of sources that name one (`jwks_url`).
    pub key_sets: KeySetCache,
    pub queue: Arc<dyn EventQueue>,
    pub clock: Arc<dyn Clock>,
    pub max_body_bytes: usize,
    /// Per-source delivery limits (an unsigned source's `rate_limit_per_second`).
    pub limits: DeliveryLimits,
}

type Limiter = governor::DefaultDirectRateLimiter;

/// One limiter per limited source, in this container: a burst of twice the
/// rate, refilled at the rate. Rebuilt when the source's rate changes.
#[derive(Debug, Default)]
pub struct DeliveryLimits(std::sync::Mutex<std::collections::HashMap<String, (u32, Arc<Limiter>)>>);

impl DeliveryLimits {
    /// Whether one more delivery for `source` fits its rate now.
    fn admit(&self, source: &str, per_second: u32) -> bool {
        let limiter = {
            let mut limiters = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let entry = limiters
                .entry(source.to_owned())
                .or_insert_with(|| (0, Arc::new(limiter(1))));
            if entry.0 != per_second {
                *entry = (per_second, Arc::new(limiter(per_second)));
            }
            entry.1.clone()
        };
        limiter.check().is_ok()
    }
}

fn limiter(per_second: u32) -> Limiter {
    let rate = std::num::NonZeroU32::new(per_second.max(1)).expect("at least one");
    let burst = rate.saturating_mul(std::num::NonZeroU32::new(2).expect("two"));
    governor::RateLimiter::direct(governor::Quota::per_second(rate).allow_burst(burst))
}

/// The `token` query parameter of the delivery's URL: from the event's own
/// parsed query where the runtime gives one, else from the URI.
fn url_token(req: &Request) -> Option<String> {
    if let Some(token) = req.query_string_parameters_ref().and_then(|q| q.first("token")) {
        return Some(token.to_owned());
    }
    let query = req.uri().query()?;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "token")
        .map(|(_, value)| value.into_owned())
}

fn reply(status: StatusCode, body: serde_json::Value) -> Response<Body> {
    let mut response = Response::new(Body::Text(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

/// Why a delivery was not verified.
enum Unverified {
    Refused(VerifyError),
    /// The source's key set cannot be had: the provider should retry.
    KeysUnavailable,
}

fn rejected(status: StatusCode, reason: &str) -> Response<Body> {
    reply(status, json!({"status": "rejected", "reason": reason}))
}

/// `{source}` from `…/webhooks/{source}`. API Gateway supplies it as a path
/// parameter; Function URLs do not, and their path may carry a stage prefix.
fn source_from(req: &Request) -> Option<String> {
    if let Some(source) = req.path_parameters_ref().and_then(|p| p.first("source")) {
        return Some(source.to_owned());
    }
    let mut segments = req.uri().path().trim_end_matches('/').rsplit('/');
    let source = segments.next()?;
    (segments.next()? == "webhooks" && !source.is_empty()).then(|| source.to_owned())
}

impl Receiver {
    /// Verifies against the source's own keys, or its key set's: fetched
    /// again once when none of the cached keys verifies (a rotation).
    async fn verify(
        &self,
        source: &SourceConfig,
        req: &Request,
        body: Bytes,
        now_unix: i64,
    ) -> Result<VerifiedWebhook, Unverified> {
        let token = url_token(req);
        let verify = |signing: Signing<'_>, body| {
            verify_with_url_token(signing, req.headers(), token.as_deref(), body, now_unix)
        };
        let Some(url) = &source.jwks_url else {
            return verify(source.into(), body).map_err(Unverified::Refused);
        };
        let with_keys = |keys: &[_], body| {
            let signing = Signing {
                public_keys: keys,
                ..Signing::from(source)
            };
            verify(signing, body)
        };
        let keys = self.key_sets.keys(url).await.map_err(|_| Unverified::KeysUnavailable)?;
        match with_keys(&keys, body.clone()) {
            Err(VerifyError::SignatureMismatch) => match self.key_sets.refreshed(url).await {
                Ok(Some(keys)) => with_keys(&keys, body).map_err(Unverified::Refused),
                Ok(None) => Err(Unverified::Refused(VerifyError::SignatureMismatch)),
                Err(_) => Err(Unverified::KeysUnavailable),
            },
            verified => verified.map_err(Unverified::Refused),
        }
    }

    pub async fn handle(&self, req: Request) -> Response<Body> {
        let Some(source_name) = source_from(&req) else {
            return rejected(StatusCode::NOT_FOUND, "not_found");
        };
        if req.method() != Method::POST {
            let mut response = rejected(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
            response
                .headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
            return response;
        }
        let sources = match self.sources.get().await {
            Ok(sources) => sources,
            Err(error) => {
                tracing::error!(%error, "no sources document; asking the provider to retry");
                return rejected(StatusCode::SERVICE_UNAVAILABLE, "sources_unavailable");
            }
        };
        let Some(source) = sources.get(&source_name) else {
            tracing::warn!(source = %source_name.escape_debug(), "delivery for an unknown source");
            return rejected(StatusCode::NOT_FOUND, "unknown_source");
        };
        let body = match req.body() {
            Body::Empty => Bytes::new(),
            Body::Text(text) => Bytes::copy_from_slice(text.as_bytes()),
            Body::Binary(bytes) => Bytes::copy_from_slice(bytes),
            _ => Bytes::new(),
        };
        if body.len() > self.max_body_bytes {
            tracing::warn!(source = %source.name, bytes = body.len(), "delivery body too large");
            return rejected(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
        }

        let now = self.clock.now();
        let verified = match self.verify(source, &req, body, now.unix_timestamp()).await {
            Ok(verified) => verified,
            Err(Unverified::Refused(error)) => {
                outcomes::record_signature_failure(&source.name, error.code());
                return rejected(StatusCode::UNAUTHORIZED, error.code());
            }
            Err(Unverified::KeysUnavailable) => {
                outcomes::record_deferred(&source.name, "key_set_unavailable");
                return reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({"status": "unavailable", "reason": "key_set_unavailable"}),
                );
            }
        };

        if let Some(per_second) = source.rate_limit_per_second {
            if !self.limits.admit(&source.name, per_second) {
                outcomes::record_deferred(&source.name, "rate_limited");
                let mut response = rejected(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
                return response;
            }
        }

        let envelope = Envelope::from_verified(&verified, rfc3339(now));
        match self.queue.enqueue(&envelope).await {
            Ok(()) => {}
            Err(EnqueueError::Unqueueable(why)) => {
                // No retry can make it fit: say so rather than ask for retries.
                outcomes::record_unqueueable(&source.name, &envelope.event_id, &why);
                return rejected(StatusCode::PAYLOAD_TOO_LARGE, "envelope_too_large");
            }
            Err(EnqueueError::Failed(error)) => {
                outcomes::record_enqueue_failure(&source.name, &envelope.event_id, &error);
                return match error.kind {
                    // SQS down, throttled, or a deployment being fixed: the
                    // provider's retry will get through.
                    ErrorKind::Transient | ErrorKind::Systemic => reply(
                        StatusCode::SERVICE_UNAVAILABLE,
                        json!({"status": "unavailable", "reason": "enqueue_failed"}),
                    ),
                    // SQS refused this message for what it is: a retry would be
                    // refused the same way.
                    ErrorKind::Permanent => rejected(StatusCode::UNPROCESSABLE_ENTITY, "enqueue_rejected"),
                };
            }
        }
        outcomes::record_accepted(&source.name, &envelope.event_id);
        reply(
            StatusCode::ACCEPTED,
            json!({"status": "accepted", "event_id": envelope.event_id}),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source_of(path: &str) -> Option<String> {
        let req = lambda_http::http::Request::builder()
            .uri(path)
            .body(Body::Empty)
            .expect("request");
        source_from(&req)
    }

    #[test]
    fn source_comes_from_the_segment_after_webhooks() {
        assert_eq!(source_of("/webhooks/acme").as_deref(), Some("acme"));
        assert_eq!(
            source_of("/prod/webhooks/acme").as_deref(),
            Some("acme"),
            "stage prefix"
        );
        assert_eq!(
            source_of("/lambda-url/receiver/webhooks/acme/").as_deref(),
            Some("acme")
        );
        assert_eq!(source_of("/webhooks/acme?x=1").as_deref(), Some("acme"));
        assert_eq!(source_of("/webhooks/"), None);
        assert_eq!(source_of("/webhooks"), None);
        assert_eq!(source_of("/hooks/acme"), None);
        assert_eq!(source_of("/webhooks/acme/extra"), None);
        assert_eq!(source_of("/"), None);
    }
}
