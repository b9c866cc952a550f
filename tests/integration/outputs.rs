//! Keeping an output: streamed from a provider's URL (real HTTP) into a
//! bucket on moto, whole or in parts, byte for byte.

use jobhook::adapters::s3::S3Upload;
use jobhook::outputs::{keep_output, Destination, KeepError};
use jobhook_dev::outputs::{serve, sha256_of};
use jobhook_tests::{aws, unique_name};

const MIB: u64 = 1024 * 1024;

async fn bucket(s3: &aws_sdk_s3::Client) -> String {
    let bucket = unique_name("outputs").to_lowercase();
    s3.create_bucket().bucket(&bucket).send().await.expect("bucket");
    bucket
}

async fn kept_sha256(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> (String, Option<String>) {
    use sha2::{Digest, Sha256};
    let object = s3.get_object().bucket(bucket).key(key).send().await.expect("kept");
    let content_type = object.content_type.clone();
    let bytes = object.body.collect().await.expect("body").into_bytes();
    (hex::encode(Sha256::digest(&bytes)), content_type)
}

#[tokio::test]
async fn an_output_large_or_small_is_kept_byte_for_byte_with_its_checksum_and_type() {
    let config = aws().await;
    let s3 = jobhook::bootstrap::s3_client(&config);
    let bucket = bucket(&s3).await;
    let upload = S3Upload::new(s3.clone());
    let base = serve().await.expect("serve");
    let http = reqwest::Client::new();
    // 12 MiB in parts of 5 (three parts, the last short), and 100 KiB whole.
    for (name, len) in [("large", 12 * MIB), ("small", 100 * 1024)] {
        let key = format!("kept/{name}.mp4");
        let destination = Destination {
            bucket: &bucket,
            key: &key,
            max_bytes: 64 * MIB,
            part_bytes: 5 * MIB as usize,
        };
        let url = format!("{base}/outputs/{name}/{len}");
        let kept = keep_output(&http, &upload, &url, &destination).await.expect("kept");
        assert_eq!(kept.bytes, len);
        assert_eq!(
            kept.sha256,
            sha256_of(name, len),
            "{name}: the checksum of the bytes served"
        );
        assert_eq!(kept.s3_uri, format!("s3://{bucket}/{key}"));
        assert_eq!(kept.content_type.as_deref(), Some("video/mp4"));
        let (sha256, content_type) = kept_sha256(&s3, &bucket, &key).await;
        assert_eq!(sha256, kept.sha256, "{name}: the object holds exactly those bytes");
        assert_eq!(content_type.as_deref(), Some("video/mp4"));
    }
}

#[tokio::test]
async fn an_output_gone_or_over_its_cap_is_refused_and_leaves_no_object_or_part_behind() {
    let config = aws().await;
    let s3 = jobhook::bootstrap::s3_client(&config);
    let bucket = bucket(&s3).await;
    let upload = S3Upload::new(s3.clone());
    let base = serve().await.expect("serve");
    let http = reqwest::Client::new();
    let destination = |key: &'static str, max_bytes| Destination {
        bucket: &bucket,
        key,
        max_bytes,
        part_bytes: 5 * MIB as usize,
    };
    let gone = keep_output(
        &http,
        &upload,
        &format!("{base}/gone/out.mp4"),
        &destination("gone", MIB),
    )
    .await;
    assert!(matches!(gone, Err(KeepError::Expired(404))), "{gone:?}");
    assert!(!gone.unwrap_err().is_retryable());
    // Announced too large: refused before a byte is read.
    let announced = keep_output(
        &http,
        &upload,
        &format!("{base}/outputs/a/{}", 3 * MIB),
        &destination("a", 2 * MIB),
    )
    .await;
    assert!(matches!(announced, Err(KeepError::TooLarge { max }) if max == 2 * MIB));
    // Found too large half way: the parts already written are dropped.
    let streamed = keep_output(
        &http,
        &upload,
        &format!("{base}/chunked/b/{}", 12 * MIB),
        &destination("b", 7 * MIB),
    )
    .await;
    assert!(matches!(streamed, Err(KeepError::TooLarge { .. })), "{streamed:?}");
    let unreachable = keep_output(&http, &upload, "http://127.0.0.1:9/x", &destination("x", MIB)).await;
    assert!(
        unreachable.is_err_and(|e| e.is_retryable()),
        "a refused connection may pass"
    );
    let listed = s3.list_objects_v2().bucket(&bucket).send().await.expect("list");
    assert_eq!(listed.key_count(), Some(0), "{:?}", listed.contents());
    let uploads = s3
        .list_multipart_uploads()
        .bucket(&bucket)
        .send()
        .await
        .expect("uploads");
    assert!(uploads.uploads().is_empty(), "{:?}", uploads.uploads());
}
