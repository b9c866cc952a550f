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

/// The keeper over the table and a bucket on moto, fetching from a real
/// HTTP server that plays the provider's CDN.
mod keeper_runs {
    use std::sync::Arc;
    use std::time::Duration;

    use jobhook::adapters::dynamodb::DynamoJobStore;
    use jobhook::adapters::memory::StaticSources;
    use jobhook::adapters::s3::S3Upload;
    use jobhook::clock::SystemClock;
    use jobhook::domain::job::JobStatus;
    use jobhook::domain::outputs::KeepRequest;
    use jobhook::ports::{JobQuery, JobStore};
    use jobhook::sources_cache::SourcesCache;
    use jobhook_dev::outputs::{serve, sha256_of};
    use jobhook_tests::{aws, dynamodb, job_event};
    use keeper::handler::{Done, Retry};
    use keeper::Keeper;
    use serde_json::json;

    struct Setup {
        keeper: Keeper,
        store: Arc<DynamoJobStore>,
        s3: aws_sdk_s3::Client,
        bucket: String,
        base: String,
    }

    async fn setup(stack_bucket: Option<&str>) -> Setup {
        let config = aws().await;
        let s3 = jobhook::bootstrap::s3_client(&config);
        let bucket = super::bucket(&s3).await;
        let base = serve().await.expect("serve");
        let ddb = aws_sdk_dynamodb::Client::new(&config);
        let table = dynamodb::create_table(&ddb, "keep").await;
        let store = Arc::new(DynamoJobStore::new(
            ddb,
            table,
            Duration::from_secs(86_400),
            Arc::new(SystemClock),
        ));
        let sources = json!({"sources": {
            "acme": {"scheme": "github", "secrets": ["s"], "api": {"base_url": base, "token": "t"},
                     "keep_outputs": {"bucket": bucket, "prefix": "jobhook/acme/", "max_bytes": 1024 * 1024}},
            "plain": {"scheme": "github", "secrets": ["s"]}}})
        .to_string();
        let keeper = Keeper {
            sources: SourcesCache::new(Arc::new(StaticSources(sources)), Duration::from_secs(60)),
            store: store.clone(),
            jobs: store.clone(),
            upload: Arc::new(S3Upload::new(s3.clone())),
            http: keeper::output_client(),
            bucket: Some(stack_bucket.unwrap_or(&bucket).to_owned()),
            prefix: "jobhook/".into(),
            part_bytes: jobhook::outputs::DEFAULT_PART_BYTES,
            redelivery: None,
            backoff: jobhook_tests::TEST_BACKOFF,
            copy_attempts: 2,
        };
        Setup {
            keeper,
            store,
            s3,
            bucket,
            base,
        }
    }

    /// A completed job whose output is `url`, and the keeper's request for it.
    async fn completed(store: &DynamoJobStore, source: &str, job: &str, url: &str) -> KeepRequest {
        let mut event = job_event(source, job, "e1", JobStatus::Completed, None);
        event.output_url = Some(url.to_owned());
        store.apply(&event).await.expect("apply");
        KeepRequest {
            source: source.into(),
            job_id: job.into(),
            output_url: url.into(),
            transition: 1,
            completed_at: "2026-12-03T10:00:00.000Z".into(),
        }
    }

    #[tokio::test]
    async fn a_completed_job_s_output_is_kept_once_and_recorded_on_the_job() {
        let s = setup(None).await;
        let url = format!("{}/outputs/j1/300000", s.base);
        let request = completed(&s.store, "acme", "j1", &url).await;
        assert_eq!(
            s.keeper.keep(&request, jobhook_tests::deadline()).await.expect("kept"),
            Done::Kept
        );
        let job = s.store.get("acme", "j1").await.expect("get").expect("job");
        let kept = job.kept_outputs.expect("recorded");
        assert_eq!(kept.len(), 1);
        assert_eq!(
            (kept[0].bytes, kept[0].sha256.as_str(), kept[0].s3_uri.as_str()),
            (
                300_000,
                sha256_of("j1", 300_000).as_str(),
                format!("s3://{}/jobhook/acme/acme/j1/300000", s.bucket).as_str()
            )
        );
        assert_eq!(job.transitions, 2, "one more transition, which announces the copy");
        let (sha, _) = super::kept_sha256(&s.s3, &s.bucket, "jobhook/acme/acme/j1/300000").await;
        assert_eq!(sha, kept[0].sha256, "the object is the output, byte for byte");
        // A redelivered request keeps nothing again.
        assert_eq!(
            s.keeper.keep(&request, jobhook_tests::deadline()).await.expect("done"),
            Done::Skipped("kept already")
        );
        assert_eq!(
            s.store.get("acme", "j1").await.expect("get").expect("job").transitions,
            2
        );
    }

    #[tokio::test]
    async fn an_output_the_provider_deleted_is_counted_as_expired_and_not_retried() {
        let s = setup(None).await;
        let request = completed(&s.store, "acme", "j2", &format!("{}/gone/j2.mp4", s.base)).await;
        assert_eq!(
            s.keeper.keep(&request, jobhook_tests::deadline()).await.expect("done"),
            Done::Expired
        );
        let job = s.store.get("acme", "j2").await.expect("get").expect("job");
        assert_eq!((job.kept_outputs, job.transitions), (None, 1));
        assert_eq!(
            job.outputs_lost.as_deref(),
            Some("the output is gone at the provider (HTTP 404)"),
            "the job says why, for the console, and no notification is sent for it"
        );
        // Over the source's 1 MiB cap: never kept, and not retried either.
        let big = completed(
            &s.store,
            "acme",
            "j3",
            &format!("{}/outputs/j3/{}", s.base, 2 * 1024 * 1024),
        )
        .await;
        assert_eq!(
            s.keeper.keep(&big, jobhook_tests::deadline()).await.expect("done"),
            Done::NotKept
        );
        let job = s.store.get("acme", "j3").await.expect("get").expect("job");
        assert_eq!(
            job.outputs_lost.as_deref(),
            Some("the output is larger than the 1048576 bytes allowed")
        );
    }

    #[tokio::test]
    async fn a_request_that_is_not_the_job_s_or_its_source_s_to_keep_keeps_nothing() {
        let s = setup(None).await;
        let url = format!("{}/outputs/j4/10", s.base);
        let plain = completed(&s.store, "plain", "j4", &url).await;
        assert_eq!(
            s.keeper.keep(&plain, jobhook_tests::deadline()).await.expect("done"),
            Done::Skipped("the source keeps no outputs")
        );
        let mut overtaken = completed(&s.store, "acme", "j4", &url).await;
        overtaken.output_url = format!("{}/outputs/j4-old/10", s.base);
        assert_eq!(
            s.keeper
                .keep(&overtaken, jobhook_tests::deadline())
                .await
                .expect("done"),
            Done::Skipped("the job no longer has this output")
        );
        // Plain http from anywhere but the source's own API host is refused.
        let elsewhere = completed(&s.store, "acme", "j5", "http://cdn.example/j5.mp4").await;
        assert_eq!(
            s.keeper
                .keep(&elsewhere, jobhook_tests::deadline())
                .await
                .expect("done"),
            Done::NotKept
        );
    }

    /// Records each hand-back.
    #[derive(Debug, Default)]
    struct Handed(std::sync::Mutex<Vec<(String, Duration)>>);

    #[async_trait::async_trait]
    impl jobhook::ports::Redelivery for Handed {
        async fn redeliver_in(&self, handle: &str, delay: Duration) -> Result<(), jobhook::ports::PortError> {
            self.0.lock().expect("lock").push((handle.to_owned(), delay));
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_source_keeping_outputs_where_the_stack_may_not_write_is_handed_back_sooner_with_its_reason() {
        let mut s = setup(Some("another-bucket")).await;
        let request = completed(&s.store, "acme", "j6", &format!("{}/outputs/j6/10", s.base)).await;
        let error = s
            .keeper
            .keep(&request, jobhook_tests::deadline())
            .await
            .expect_err("not kept");
        assert!(matches!(error, Retry::Misconfigured(_)), "{error:?}");
        assert!(error.to_string().contains("s3://another-bucket/jobhook/"), "{error}");
        // Through the queue: the message fails, and comes back after the
        // delay its receive count says, not the visibility timeout.
        let handed = Arc::new(Handed::default());
        s.keeper.redelivery = Some(handed.clone());
        let mut message = jobhook_tests::messages::message(&serde_json::to_string(&request).expect("json"));
        message.receipt_handle = Some("rh-1".into());
        message.attributes.insert("ApproximateReceiveCount".into(), "2".into());
        let response = s
            .keeper
            .handle(jobhook_tests::messages::batch(vec![message]), jobhook_tests::deadline())
            .await;
        assert_eq!(response.batch_item_failures.len(), 1);
        assert_eq!(
            *handed.0.lock().expect("lock"),
            [("rh-1".to_owned(), Duration::from_secs(60))]
        );
    }
}

#[tokio::test]
async fn a_failed_fetch_names_no_part_of_a_presigned_url() {
    let config = aws().await;
    let s3 = jobhook::bootstrap::s3_client(&config);
    let bucket = bucket(&s3).await;
    // A port nothing listens on: the connection is refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let url = format!("http://127.0.0.1:{port}/out.mp4?X-Amz-Signature=SIGNATURE-SECRET&X-Amz-Credential=AKIA-SECRET");
    let destination = Destination {
        bucket: &bucket,
        key: "refused",
        max_bytes: MIB,
        part_bytes: 5 * MIB as usize,
    };
    let error = keep_output(&reqwest::Client::new(), &S3Upload::new(s3), &url, &destination)
        .await
        .expect_err("refused");
    assert!(
        matches!(error, KeepError::Source(_)) && error.is_retryable(),
        "{error:?}"
    );
    let text = format!("{error} {error:?}");
    assert!(!text.contains("SECRET"), "{text}");
}
