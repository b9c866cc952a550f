//! A real front door for the receiver that goes down on schedule, so the
//! simulator's deliveries meet real failures and must retry: during the first
//! half of the outage window it answers every request `503`, as a failing
//! gateway would; during the second half nothing listens on its port, so
//! connections are refused, as when the receiver is gone. Outside the window
//! it forwards each request, bytes unchanged, to the receiver.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// When the receiver is unreachable, measured from the run's start.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub start: Duration,
    pub end: Duration,
}

impl Window {
    pub fn contains(&self, elapsed: Duration) -> bool {
        elapsed >= self.start && elapsed < self.end
    }

    fn midpoint(&self) -> Duration {
        self.start + (self.end - self.start) / 2
    }
}

#[derive(Debug)]
struct Upstream {
    http: reqwest::Client,
    url: String,
}

async fn forward(
    State(upstream): State<Arc<Upstream>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // The query goes on as sent: an unsigned source's token is in it.
    let url = match uri.query() {
        Some(query) => format!("{}?{query}", upstream.url),
        None => upstream.url.clone(),
    };
    let mut request = upstream.http.post(&url).body(body);
    for (name, value) in &headers {
        if name != axum::http::header::HOST && name != axum::http::header::CONTENT_LENGTH {
            request = request.header(name.as_str(), value.as_bytes());
        }
    }
    match request.send().await {
        Ok(answer) => {
            let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            (status, answer.bytes().await.unwrap_or_default()).into_response()
        }
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}

async fn unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "receiver unavailable (simulated outage)",
    )
        .into_response()
}

async fn serve_until(listener: TcpListener, app: Router, until: Instant) -> Result<(), Error> {
    axum::serve(listener, app)
        .with_graceful_shutdown(tokio::time::sleep_until(until))
        .await?;
    Ok(())
}

/// Starts the front door on a free 127.0.0.1 port; returns its URL and the
/// task, which serves until aborted.
pub async fn start(receiver_url: String, window: Window, started: Instant) -> Result<(String, JoinHandle<()>), Error> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr: SocketAddr = listener.local_addr()?;
    let upstream = Arc::new(Upstream {
        http: reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?,
        url: receiver_url,
    });
    let forwarding = Router::new().fallback(post(forward)).with_state(upstream);
    let failing = Router::new().fallback(unavailable);
    let task = tokio::spawn(async move {
        let phases = async {
            let mut listener = listener;
            if window.end > window.start {
                serve_until(listener, forwarding.clone(), started + window.start).await?;
                listener = TcpListener::bind(addr).await?;
                serve_until(listener, failing, started + window.midpoint()).await?;
                // Nothing listens now: connection refused.
                tokio::time::sleep_until(started + window.end).await;
                listener = TcpListener::bind(addr).await?;
            }
            axum::serve(listener, forwarding).await?;
            Ok::<(), Error>(())
        };
        if let Err(error) = phases.await {
            eprintln!("simulator: the receiver's front door failed: {error}");
        }
    });
    Ok((format!("http://{addr}/"), task))
}
