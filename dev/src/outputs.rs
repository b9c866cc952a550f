//! Outputs as a provider serves them: `GET /outputs/{name}/{bytes}` streams
//! `bytes` bytes generated from `name` (never held in memory, so a 1 GiB
//! output costs nothing to serve), with its length and a content type
//! (`/chunked/...` the same without a length);
//! `GET /gone/...` answers 404, as an output past the provider's retention.

use axum::body::{Body, Bytes};
use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};

const CHUNK: usize = 64 * 1024;

/// The bytes of output `name`, `len` long, a chunk at a time.
pub fn chunks(name: &str, len: u64) -> impl Iterator<Item = Bytes> {
    let digest = Sha256::digest(name.as_bytes());
    let mut state = u64::from_le_bytes(digest[..8].try_into().expect("8 bytes")) | 1;
    let mut left = len;
    std::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        let size = left.min(CHUNK as u64) as usize;
        left -= size as u64;
        let mut chunk = Vec::with_capacity(size + 8);
        while chunk.len() < size {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.extend_from_slice(&state.to_le_bytes());
        }
        chunk.truncate(size);
        Some(Bytes::from(chunk))
    })
}

/// The hex SHA-256 of output `name` of `len` bytes.
pub fn sha256_of(name: &str, len: u64) -> String {
    let mut digest = Sha256::new();
    for chunk in chunks(name, len) {
        digest.update(&chunk);
    }
    hex::encode(digest.finalize())
}

async fn output(Path((name, len)): Path<(String, u64)>) -> Response {
    let stream = futures::stream::iter(chunks(&name, len).map(Ok::<_, std::convert::Infallible>));
    (
        [
            (header::CONTENT_TYPE, "video/mp4".to_owned()),
            (header::CONTENT_LENGTH, len.to_string()),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

/// The same bytes with no length announced (chunked), as some servers send.
async fn chunked(Path((name, len)): Path<(String, u64)>) -> Response {
    let stream = futures::stream::iter(chunks(&name, len).map(Ok::<_, std::convert::Infallible>));
    ([(header::CONTENT_TYPE, "video/mp4")], Body::from_stream(stream)).into_response()
}

pub fn router() -> Router {
    Router::new()
        .route("/outputs/{name}/{len}", get(output))
        .route("/chunked/{name}/{len}", get(chunked))
        .route("/gone/{*rest}", get(|| async { StatusCode::NOT_FOUND }))
}

/// Serves [`router`] on an ephemeral local port; its base URL.
pub async fn serve() -> std::io::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, router()).await });
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_output_is_the_same_bytes_every_time_and_exactly_its_length() {
        for len in [0, 1, 7, CHUNK as u64, CHUNK as u64 * 3 + 5] {
            let bytes: Vec<u8> = chunks("a", len).flat_map(|c| c.to_vec()).collect();
            assert_eq!(bytes.len() as u64, len);
            let again: Vec<u8> = chunks("a", len).flat_map(|c| c.to_vec()).collect();
            assert_eq!(bytes, again);
            assert_eq!(sha256_of("a", len), hex::encode(Sha256::digest(&bytes)));
        }
        assert_ne!(sha256_of("a", 100), sha256_of("b", 100), "each name its own bytes");
    }
}
