//! How the simulator speaks each provider: its job ids, which of a job's
//! state changes it sends webhooks for, their bodies, its polling API's
//! paths, auth and answers, and what jobhook must end with for a job. The
//! formats follow the fixtures in `events/providers/` (each provider's docs).

use jobhook::domain::digest::sha256_hex;
use jobhook::domain::job::JobStatus;
use serde_json::{json, Value};

/// Where this run's simulator serves outputs, and how large they are.
#[derive(Debug, Clone)]
pub struct ServedOutputs {
    /// `http://127.0.0.1:{port}`.
    pub base: String,
    pub max_bytes: u64,
}

impl ServedOutputs {
    /// A job's output size, from its id: most between 1 KiB and 256 KiB,
    /// one in 25 `max_bytes` (past a multipart upload's first part).
    pub fn size_of(&self, job: &str) -> u64 {
        let digest = sha256_hex(job.as_bytes());
        let n = u64::from_str_radix(&digest[..12], 16).unwrap_or(0);
        if n % 25 == 0 {
            self.max_bytes
        } else {
            (1024 + n % (255 * 1024)).min(self.max_bytes)
        }
    }
}

static OUTPUTS: std::sync::OnceLock<ServedOutputs> = std::sync::OnceLock::new();

/// Makes generic and Replicate jobs' outputs the simulator's own, once per
/// process (one simulator runs per process).
pub fn serve_outputs(outputs: ServedOutputs) {
    let _ = OUTPUTS.set(outputs);
}

/// A provider the simulator can play, by the source's `provider`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Generic,
    OpusClip,
    Replicate,
    OpenAi,
    Mux,
    AssemblyAi,
    /// Unsigned: each delivery is a trigger, and its event is the API's answer.
    RunPod,
    /// Signed with Ed25519, by the simulator's own key ([`FAL_DEV_SEED`]).
    Fal,
    CloudflareStream,
    /// Unsigned, and posts every update.
    Luma,
    /// Basic credentials in the callback URL, sent as `Authorization`.
    Deepgram,
    /// Speech to text: a transcription webhook, and 404 until it is done.
    ElevenLabs,
}

/// The key the simulator signs fal deliveries with; `events/sources.dev.json`
/// lists its public key (a test holds the two together).
pub const FAL_DEV_SEED: [u8; 32] = *b"jobhook-dev-fal-signing-seed-000";

/// One state of a job at some point of its run.
#[derive(Debug, Clone, Copy)]
pub struct State {
    pub status: JobStatus,
    pub progress: Option<u8>,
    /// The job's first event (it has just started).
    pub first: bool,
}

impl Dialect {
    pub fn for_provider(provider: &str) -> Option<Self> {
        Some(match provider {
            "generic" => Self::Generic,
            "opusclip" => Self::OpusClip,
            "replicate" => Self::Replicate,
            "openai" => Self::OpenAi,
            "mux" => Self::Mux,
            "assemblyai" => Self::AssemblyAi,
            "runpod" => Self::RunPod,
            "fal" => Self::Fal,
            "cloudflare-stream" => Self::CloudflareStream,
            "luma" => Self::Luma,
            "deepgram" => Self::Deepgram,
            "elevenlabs" => Self::ElevenLabs,
            _ => return None,
        })
    }

    pub fn job_id(self, n: usize) -> String {
        match self {
            // The id's prefix picks the polling path.
            Self::OpenAi => format!("batch_sim{n:04}"),
            Self::OpusClip => format!("Psim{n:04}"),
            _ => format!("sim-{n:04}"),
        }
    }

    /// Whether the provider has a failed end the simulator can play: the
    /// documented one (ElevenLabs documents no failed transcription).
    pub fn fails(self) -> bool {
        self != Self::ElevenLabs
    }

    /// The header the polling API takes its key in.
    pub fn auth_header(self) -> &'static str {
        match self {
            Self::ElevenLabs => "xi-api-key",
            _ => "authorization",
        }
    }

    /// Whether the provider has a canceled end.
    pub fn cancels(self) -> bool {
        matches!(self, Self::Generic | Self::Replicate | Self::OpenAi | Self::RunPod)
    }

    /// Whether a state change sends a webhook: some providers announce only
    /// the end (and Mux the asset's creation too).
    pub fn sends_webhook(self, state: State) -> bool {
        match self {
            Self::Generic | Self::Replicate | Self::Luma => true,
            Self::Mux => state.first || state.status.is_terminal(),
            Self::OpenAi
            | Self::AssemblyAi
            | Self::OpusClip
            | Self::RunPod
            | Self::Fal
            | Self::CloudflareStream
            | Self::Deepgram
            | Self::ElevenLabs => state.status.is_terminal(),
        }
    }

    /// Jobs are tracked when submitted (`jobhook track`), as the README asks
    /// for providers that send one or two webhooks a job: otherwise a job
    /// whose webhooks are all lost is never known, and never polled.
    pub fn track_every_job(self) -> bool {
        matches!(
            self,
            Self::OpenAi
                | Self::AssemblyAi
                | Self::OpusClip
                | Self::Mux
                | Self::RunPod
                | Self::Fal
                | Self::CloudflareStream
                | Self::Deepgram
                | Self::ElevenLabs
        )
    }

    /// Whether the provider signs nothing, so that each delivery is a
    /// trigger: what jobhook records is the API's answer, under the poll's
    /// identity, not the delivery.
    pub fn is_trigger(self) -> bool {
        matches!(self, Self::RunPod | Self::Luma)
    }

    /// The event a trigger delivery leads to: the job's end as the API
    /// answers it. A trigger for an earlier state may be read after the job
    /// moved on (and several coalesce into one read), so only the end is
    /// sure to be recorded.
    pub fn trigger_event_id(self, source: &str, job: &str, end: State) -> String {
        let name = jobhook::domain::provider::names()
            .into_iter()
            .find(|n| Self::for_provider(n) == Some(self))
            .unwrap_or_default();
        let answer = jobhook::domain::provider::profile(name)
            .and_then(|p| p.parse_poll(self.answer(job, Some(end)).to_string().as_bytes()).ok());
        answer.map_or_else(String::new, |a| {
            jobhook::domain::provider::job_event_from_poll(source, job, &a).event_id
        })
    }

    /// The delivery id the scheme carries, for those that carry one.
    pub fn delivery_id(self, job: &str, index: usize) -> String {
        match self {
            Self::OpenAi => format!("wh_{job}_{index}"),
            _ => format!("msg_{job}_{index}"),
        }
    }

    /// The event id jobhook records for a delivery: the delivery id where
    /// the scheme has one, else the body's event id, else the body's hash;
    /// an unsigned delivery's is [`Self::trigger_event_id`].
    pub fn event_id(self, delivery_id: &str, body: &str) -> String {
        match self {
            // Never asked: see trigger_event_id.
            Self::RunPod | Self::Luma => String::new(),
            Self::Generic | Self::Replicate | Self::OpenAi => delivery_id.to_owned(),
            Self::Mux => serde_json::from_str::<Value>(body)
                .ok()
                .and_then(|b| b["id"].as_str().map(str::to_owned))
                .unwrap_or_default(),
            Self::AssemblyAi
            | Self::OpusClip
            | Self::Fal
            | Self::CloudflareStream
            | Self::Deepgram
            | Self::ElevenLabs => sha256_hex(body.as_bytes()),
        }
    }

    /// The `Authorization` value the polling API expects for `token`.
    pub fn authorization(self, token: &str) -> String {
        use base64::Engine as _;
        match self {
            Self::Mux => format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(token)),
            Self::AssemblyAi | Self::ElevenLabs => token.to_owned(),
            Self::Fal => format!("Key {token}"),
            Self::Deepgram => format!("Token {token}"),
            _ => format!("Bearer {token}"),
        }
    }

    /// The output URL jobhook must end with for a completed job. Where the
    /// simulator serves outputs ([`serve_outputs`]), a generic or Replicate
    /// job's output is one of its own, that expires.
    pub fn output_url(self, job: &str) -> Option<String> {
        let served = OUTPUTS
            .get()
            .filter(|_| matches!(self, Self::Generic | Self::Replicate));
        if let Some(outputs) = served {
            return Some(format!("{}/outputs/{job}/{}", outputs.base, outputs.size_of(job)));
        }
        match self {
            Self::Generic => Some(format!("https://cdn.example.com/{job}.mp4")),
            Self::Replicate => Some(format!("https://replicate.delivery/sim/{job}/out-0.png")),
            Self::Mux => Some(format!("https://stream.mux.com/{}.m3u8", playback_id(job))),
            Self::OpusClip => Some(clip_url(job, 0)),
            Self::Fal => Some(format!("https://v3.fal.media/files/sim/{job}.png")),
            Self::CloudflareStream => Some(format!(
                "https://customer-sim.cloudflarestream.com/{job}/manifest/video.m3u8"
            )),
            Self::OpenAi | Self::AssemblyAi | Self::RunPod | Self::Deepgram | Self::ElevenLabs => None,
            Self::Luma => Some(format!("https://storage.cdn-luma.com/dream_machine/sim/{job}.mp4")),
        }
    }

    /// The error text jobhook must end with for a failed job.
    pub fn error(self, job: &str) -> String {
        match self {
            Self::Generic => format!("render failed: {job}"),
            Self::Replicate => format!("CUDA out of memory ({job})"),
            Self::OpenAi => format!("invalid_request: line 1 is malformed ({job})"),
            Self::Mux => format!("invalid_input: the file is not a video ({job})"),
            Self::AssemblyAi => format!("Download error, unable to download ({job})"),
            Self::OpusClip => format!("STALLED: Failed to import video ({job})"),
            Self::RunPod => format!("handler raised: CUDA error ({job})"),
            Self::Fal => format!("Invalid status code: 422 ({job})"),
            Self::Luma => format!("400: prompt not allowed because advanced moderation failed ({job})"),
            Self::Deepgram => format!("Bad Request: failed to process audio: corrupt or unsupported data ({job})"),
            Self::ElevenLabs => format!("unreachable: ElevenLabs jobs do not fail here ({job})"),
            Self::CloudflareStream => format!("ERR_MALFORMED_VIDEO: The video was deemed to be corrupted ({job})."),
        }
    }

    /// The progress jobhook keeps when the job ends this way: a completed
    /// job is at 100 unless the provider says otherwise.
    pub fn final_progress(self, status: JobStatus) -> Option<u8> {
        (status == JobStatus::Completed).then_some(100)
    }

    /// A webhook body for the job at `state`, its `index`th event.
    pub fn webhook(self, job: &str, index: usize, state: State) -> String {
        let now = time::OffsetDateTime::now_utc();
        match self {
            Self::Generic => {
                let terminal = state.status.is_terminal();
                let kind = match (state.status, state.first) {
                    (JobStatus::Processing, true) => "job.started",
                    (JobStatus::Processing, false) => "job.progress",
                    (JobStatus::Completed, _) => "job.completed",
                    (JobStatus::Failed, _) => "job.failed",
                    (JobStatus::Canceled, _) => "job.canceled",
                    (JobStatus::Submitted, _) => "job.submitted",
                };
                // A field jobhook does not read, as providers add them: the
                // logs make half the jobs' later deliveries archive to the bucket.
                json!({"id": format!("evt_{job}_{index}"), "type": kind,
                       "created_at": jobhook::clock::rfc3339(now), "logs": logs(job, Some(state)),
                       "data": {"job_id": job, "status": state.status.as_str(), "progress": state.progress,
                                "output_url": if terminal && state.status == JobStatus::Completed { self.output_url(job) } else { None },
                                "error": (state.status == JobStatus::Failed).then(|| self.error(job))}})
                .to_string()
            }
            Self::Fal => {
                let ok = state.status == JobStatus::Completed;
                json!({"request_id": job, "gateway_request_id": job, "status": if ok { "OK" } else { "ERROR" },
                       "payload": if ok { self.fal_output(job) } else { Value::Null },
                       "error": (!ok).then(|| self.error(job))})
                .to_string()
            }
            Self::Deepgram => match state.status {
                JobStatus::Completed => json!({"metadata": {"transaction_key": "deprecated", "request_id": job,
                    "sha256": sha256_hex(job.as_bytes()), "created": "2026-05-13T12:00:00.000Z", "duration": 25.9, "channels": 1},
                    "results": {"channels": [{"alternatives": [{"transcript": format!("Transcript of {job}."),
                        "confidence": 0.99, "words": [{"word": "transcript", "start": 0.08, "end": 0.32, "confidence": 0.99}]}]}]}})
                .to_string(),
                _ => self.deepgram_error(job).to_string(),
            },
            Self::ElevenLabs => json!({"type": "speech_to_text_transcription", "event_timestamp": now.unix_timestamp(),
                "data": {"request_id": format!("req-{job}"), "webhook_metadata": {"job": job},
                         "transcription": self.answer(job, Some(state))}})
            .to_string(),
            // Cloudflare posts the video object itself.
            Self::CloudflareStream => self.answer(job, Some(state))["result"].to_string(),
            // RunPod posts what `/status` answers.
            Self::Replicate | Self::RunPod | Self::Luma => self.answer(job, Some(state)).to_string(),
            Self::OpenAi => {
                let kind = match state.status {
                    JobStatus::Completed => "batch.completed",
                    JobStatus::Failed => "batch.failed",
                    _ => "batch.cancelled",
                };
                json!({"id": format!("evt_{job}_{index}"), "object": "event",
                       "created_at": now.unix_timestamp(), "type": kind, "data": {"id": job}})
                .to_string()
            }
            Self::Mux => {
                let kind = match state.status {
                    JobStatus::Completed => "video.asset.ready",
                    JobStatus::Failed => "video.asset.errored",
                    _ => "video.asset.created",
                };
                json!({"type": kind, "id": format!("evt-{job}-{index}"), "created_at": jobhook::clock::rfc3339(now),
                       "object": {"type": "asset", "id": job}, "environment": {"name": "Development", "id": "sim"},
                       "data": self.answer(job, Some(state))["data"]})
                .to_string()
            }
            Self::AssemblyAi => json!({"transcript_id": job,
                "status": if state.status == JobStatus::Completed { "completed" } else { "error" }})
            .to_string(),
            Self::OpusClip => json!({"projectId": job,
                "stage": if state.status == JobStatus::Completed { "COMPLETE" } else { "STALLED" },
                "error": (state.status == JobStatus::Failed).then(|| format!("Failed to import video ({job})"))})
            .to_string(),
        }
    }

    /// What the polling API answers for the job at `state` (None: not
    /// started yet).
    pub fn answer(self, job: &str, state: Option<State>) -> Value {
        let status = state.map(|s| s.status);
        let progress = state.and_then(|s| s.progress);
        let completed = status == Some(JobStatus::Completed);
        let failed = status == Some(JobStatus::Failed);
        match self {
            Self::Generic => json!({"id": job, "progress": progress,
                "status": status.map_or("queued", JobStatus::as_str),
                "output_url": if completed { self.output_url(job) } else { None },
                "error": failed.then(|| self.error(job)),
                "updated_at": "2026-05-13T12:00:05Z"}),
            Self::Replicate => {
                let raw = match status {
                    None => "starting",
                    Some(JobStatus::Completed) => "succeeded",
                    Some(JobStatus::Failed) => "failed",
                    Some(JobStatus::Canceled) => "canceled",
                    Some(_) => "processing",
                };
                let mut p = json!({"id": job, "model": "sim/clipper", "version": "5c7d5dc6dd8bf75c1acaa8565735e798",
                    "input": {"video": format!("https://example.com/{job}.mp4")}, "logs": logs(job, state), "status": raw,
                    "created_at": "2026-05-13T12:00:00.000Z",
                    "urls": {"get": format!("https://api.replicate.com/v1/predictions/{job}"),
                             "cancel": format!("https://api.replicate.com/v1/predictions/{job}/cancel")}});
                // Keys are left out rather than sent as null until they apply.
                if state.is_some() {
                    p["started_at"] = "2026-05-13T12:00:01.000Z".into();
                }
                if completed {
                    p["output"] = json!([
                        self.output_url(job),
                        format!("https://replicate.delivery/sim/{job}/out-1.png")
                    ]);
                }
                if failed {
                    p["error"] = self.error(job).into();
                }
                if status.is_some_and(JobStatus::is_terminal) {
                    p["completed_at"] = "2026-05-13T12:00:09.000Z".into();
                    p["metrics"] = json!({"predict_time": 8.1});
                }
                p
            }
            Self::OpenAi => {
                let raw = match status {
                    None => "validating",
                    Some(JobStatus::Completed) => "completed",
                    Some(JobStatus::Failed) => "failed",
                    Some(JobStatus::Canceled) => "cancelled",
                    Some(_) => "in_progress",
                };
                let done = match status {
                    Some(JobStatus::Completed) => 100,
                    _ => u64::from(progress.unwrap_or(0)),
                };
                json!({"id": job, "object": "batch", "endpoint": "/v1/chat/completions", "status": raw,
                       "input_file_id": format!("file-in-{job}"), "completion_window": "24h",
                       "output_file_id": completed.then(|| format!("file-out-{job}")),
                       "error_file_id": null,
                       "errors": if failed { json!({"object": "list", "data": [{"code": "invalid_request",
                                   "message": format!("line 1 is malformed ({job})"), "param": null, "line": 1}]}) }
                                 else { Value::Null },
                       "created_at": 1_778_673_600, "in_progress_at": state.map(|_| 1_778_673_601),
                       "completed_at": completed.then_some(1_778_673_609),
                       "request_counts": {"total": 100, "completed": done, "failed": 0}})
            }
            Self::Mux => {
                let raw = match status {
                    Some(JobStatus::Completed) => "ready",
                    Some(JobStatus::Failed) => "errored",
                    _ => "preparing",
                };
                let mut asset = json!({"id": job, "status": raw, "created_at": "1778673600",
                    "playback_ids": [{"id": playback_id(job), "policy": "public"}],
                    "mp4_support": "none", "master_access": "none", "encoding_tier": "smart"});
                if completed {
                    asset["duration"] = 23.8.into();
                    asset["aspect_ratio"] = "16:9".into();
                }
                if failed {
                    asset["errors"] = json!({"type": "invalid_input",
                        "messages": [format!("the file is not a video ({job})")]});
                }
                json!({"data": asset})
            }
            Self::AssemblyAi => {
                let raw = match status {
                    None => "queued",
                    Some(JobStatus::Completed) => "completed",
                    Some(JobStatus::Failed) => "error",
                    Some(_) => "processing",
                };
                json!({"id": job, "status": raw, "audio_url": format!("https://example.com/{job}.mp3"),
                       "language_code": "en_us",
                       "text": completed.then_some("Smoke from hundreds of wildfires in Canada."),
                       "words": if completed { json!([{"text": "Smoke", "start": 90, "end": 250, "confidence": 0.97}]) } else { Value::Null },
                       "audio_duration": completed.then_some(281),
                       "error": failed.then(|| format!("Download error, unable to download ({job})"))})
            }
            Self::RunPod => Self::runpod_status(job, state),
            // The transcript, once there is one; before, nothing (404).
            Self::ElevenLabs => match completed {
                true => {
                    json!({"language_code": "en", "language_probability": 0.98, "text": format!("Transcript of {job}."),
                    "words": [{"text": "Transcript", "start": 0.0, "end": 0.5, "type": "word", "speaker_id": "speaker_1"}],
                    "transcription_id": job, "audio_duration_secs": 1.1})
                }
                false => json!({"detail": {"status": "not_found", "message": "transcript not ready"}}),
            },
            // The request log: a response once the request ended.
            Self::Deepgram => {
                let response = match status {
                    Some(JobStatus::Completed) => json!({"details": {"duration": 25.9}}),
                    Some(JobStatus::Failed) => self.deepgram_error(job),
                    _ => Value::Null,
                };
                json!({"request": {"request_id": job, "project_uuid": "sim-project", "created": "2026-05-13T12:00:00Z",
                    "path": "/v1/listen?callback=…", "code": if failed { json!(400) } else if completed { json!(200) } else { Value::Null },
                    "response": response}})
            }
            Self::Luma => {
                let raw = match status {
                    None => "queued",
                    Some(JobStatus::Completed) => "completed",
                    Some(JobStatus::Failed) => "failed",
                    Some(_) => "dreaming",
                };
                json!({"id": job, "state": raw, "created_at": "2026-05-13T12:00:00Z", "model": "ray-2",
                       "failure_reason": failed.then(|| self.error(job)),
                       "assets": if completed { json!({"video": self.output_url(job)}) } else { Value::Null },
                       "request": {"prompt": format!("a lake at sunset ({job})"), "aspect_ratio": "16:9"}})
            }
            Self::CloudflareStream => {
                let state_text = match status {
                    None => "queued",
                    Some(JobStatus::Completed) => "ready",
                    Some(JobStatus::Failed) => "error",
                    Some(_) => "inprogress",
                };
                let mut video = json!({"uid": job, "readyToStream": completed, "created": "2026-05-13T12:00:00.000000Z",
                    "modified": "2026-05-13T12:00:09.000000Z", "meta": {"name": format!("{job}.mp4")},
                    "status": {"state": state_text, "pctComplete": format!("{}.000000", progress.unwrap_or(0))},
                    "playback": {"hls": self.output_url(job), "dash": self.output_url(job).map(|u| u.replace(".m3u8", ".mpd"))}});
                if completed {
                    video["duration"] = 23.8.into();
                }
                if failed {
                    let error = self.error(job);
                    let (code, text) = error.split_once(": ").unwrap_or(("ERR", &error));
                    video["status"]["errReasonCode"] = code.into();
                    video["status"]["errReasonText"] = text.into();
                }
                json!({"success": true, "errors": [], "messages": [], "result": video})
            }
            // A failed run ends COMPLETED, with its error beside it.
            Self::Fal => {
                let raw = match status {
                    None => "IN_QUEUE",
                    Some(s) if s.is_terminal() => "COMPLETED",
                    Some(_) => "IN_PROGRESS",
                };
                json!({"status": raw, "request_id": job, "error": failed.then(|| self.error(job)),
                       "response_url": format!("https://queue.fal.run/fal-ai/flux/requests/{job}")})
            }
            Self::OpusClip => {
                let stage = match (status, progress) {
                    (None, _) => "QUEUED",
                    (Some(JobStatus::Completed), _) => "COMPLETE",
                    (Some(JobStatus::Failed), _) => "STALLED",
                    (Some(_), None) => "IMPORT",
                    (Some(_), Some(p)) if p < 20 => "IMPORT",
                    (Some(_), Some(p)) if p < 40 => "CURATE",
                    (Some(_), Some(p)) if p < 60 => "REFINE",
                    (Some(_), Some(p)) if p < 80 => "RENDER",
                    (Some(_), Some(_)) => "UPLOAD",
                };
                json!({"id": job, "projectId": job, "orgId": "org_sim", "stage": stage,
                       "error": failed.then(|| format!("Failed to import video ({job})")), "stallCount": failed.then_some(1)})
            }
        }
    }

    /// The HTTP status of a status answer: fal's 202 while a request runs.
    pub fn answer_code(self, answer: &Value) -> u16 {
        match self {
            Self::Fal if answer["status"] != "COMPLETED" => 202,
            Self::ElevenLabs if answer.get("text").is_none() => 404,
            _ => 200,
        }
    }

    /// A fal request's output, as `GET …/requests/{id}` and the webhook's
    /// `payload` give it.
    pub fn fal_output(self, job: &str) -> Value {
        json!({"images": [{"url": self.output_url(job), "content_type": "image/png", "width": 1024, "height": 1024}],
               "seed": 42, "has_nsfw_concepts": [false]})
    }

    /// Deepgram's error body for a request it could not transcribe.
    fn deepgram_error(self, job: &str) -> Value {
        let error = self.error(job);
        let (code, message) = error.split_once(": ").unwrap_or(("Bad Request", &error));
        json!({"err_code": code, "err_msg": message, "request_id": job})
    }

    /// RunPod's `/status` answer for the job.
    fn runpod_status(job: &str, state: Option<State>) -> Value {
        let status = state.map(|s| s.status);
        let raw = match status {
            None => "IN_QUEUE",
            Some(JobStatus::Completed) => "COMPLETED",
            Some(JobStatus::Failed) => "FAILED",
            Some(JobStatus::Canceled) => "CANCELLED",
            Some(_) => "IN_PROGRESS",
        };
        let mut answer = json!({"id": job, "status": raw, "delayTime": 2188});
        if status == Some(JobStatus::Completed) {
            answer["executionTime"] = 9042.into();
            answer["output"] = json!({"video": format!("s3://sim-bucket/{job}/out.mp4"), "frames": 240});
        }
        if status == Some(JobStatus::Failed) {
            answer["error"] = Self::RunPod.error(job).into();
        }
        answer
    }

    /// OpusClip's clips of a finished project.
    pub fn clips(self, job: &str) -> Value {
        json!([0, 1].map(
            |n| json!({"id": format!("{job}.CU{n}"), "projectId": job, "curationId": format!("CU{n}"),
            "uriForExport": clip_url(job, n), "uriForPreview": clip_url(job, n).replace("ehd", "esd"),
            "durationMs": 19_478 + n * 1000, "title": format!("Clip {n} of {job}")})
        ))
    }
}

/// A prediction's logs as they grow while it runs: for half the jobs, a
/// line per step with figures that compress poorly, so that their later
/// deliveries are too large to archive inline and go to the bucket.
fn logs(job: &str, state: Option<State>) -> String {
    let digest = sha256_hex(job.as_bytes());
    if digest.as_bytes()[0] % 2 == 0 {
        return String::new();
    }
    let steps = match state {
        None => 0,
        Some(s) if s.status.is_terminal() => 30,
        Some(s) => usize::from(s.progress.unwrap_or(0)) * 30 / 100,
    };
    (0..steps)
        .map(|step| {
            let figures = sha256_hex(format!("{job}/{step}").as_bytes());
            format!("step {step}: loss={} grad={}\n", &figures[..12], &figures[12..28])
        })
        .collect()
}

fn playback_id(job: &str) -> String {
    format!("pb{}", job.replace('-', ""))
}

fn clip_url(job: &str, n: usize) -> String {
    format!("https://ext.cdn.opus.pro/media/org_sim/{job}/c.CU{n}/ehd.mp4")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Dialect; 12] = [
        Dialect::Generic,
        Dialect::OpusClip,
        Dialect::Replicate,
        Dialect::OpenAi,
        Dialect::Mux,
        Dialect::AssemblyAi,
        Dialect::RunPod,
        Dialect::Fal,
        Dialect::CloudflareStream,
        Dialect::Luma,
        Dialect::Deepgram,
        Dialect::ElevenLabs,
    ];

    fn profile_of(dialect: Dialect) -> &'static dyn jobhook::domain::provider::ProviderProfile {
        let name = jobhook::domain::provider::names()
            .into_iter()
            .find(|n| Dialect::for_provider(n) == Some(dialect))
            .expect("a profile");
        jobhook::domain::provider::profile(name).expect("profile")
    }

    /// What the simulator answers and sends for a job, its profile reads as
    /// the state the simulator means: the demo's verdict rests on it.
    #[test]
    fn each_dialect_s_answers_and_end_webhooks_read_as_the_state_meant() {
        for dialect in ALL {
            let profile = profile_of(dialect);
            let mut ends = vec![JobStatus::Completed];
            if dialect.fails() {
                ends.push(JobStatus::Failed);
            }
            if dialect.cancels() {
                ends.push(JobStatus::Canceled);
            }
            let job = dialect.job_id(1);
            for status in ends {
                let state = State {
                    status,
                    progress: None,
                    first: false,
                };
                let answer = dialect.answer(&job, Some(state)).to_string();
                if !matches!(dialect, Dialect::OpusClip | Dialect::Fal) || status != JobStatus::Completed {
                    let read = profile
                        .parse_poll(answer.as_bytes())
                        .unwrap_or_else(|e| panic!("{dialect:?} {status}: {e}"));
                    assert_eq!(read.status, status, "{dialect:?} answer");
                }
                if dialect.sends_webhook(state) {
                    let body = dialect.webhook(&job, 1, state);
                    let payload = profile
                        .parse_webhook(body.as_bytes())
                        .unwrap_or_else(|e| panic!("{dialect:?} {status}: {e}"));
                    assert_eq!(payload.job_id, job, "{dialect:?}");
                    if !payload.fetch {
                        assert_eq!(payload.status, status, "{dialect:?} webhook");
                    }
                }
            }
        }
    }

    /// An unsigned delivery leads to the record of the job's end as the API
    /// answers it: the simulator must expect that id, or it counts it lost.
    #[test]
    fn a_trigger_delivery_is_expected_under_the_id_of_the_end_the_api_answers() {
        for dialect in [Dialect::RunPod, Dialect::Luma] {
            let end = State {
                status: JobStatus::Completed,
                progress: None,
                first: false,
            };
            let profile = profile_of(dialect);
            let answer = profile
                .parse_poll(dialect.answer("sim-0002", Some(end)).to_string().as_bytes())
                .expect("answer");
            let expected = jobhook::domain::provider::triggered_event("src", "sim-0002", &answer).event_id;
            assert_eq!(
                dialect.trigger_event_id("src", "sim-0002", end),
                expected,
                "{dialect:?}"
            );
            assert_ne!(dialect.trigger_event_id("other", "sim-0002", end), expected);
            assert!(dialect.is_trigger());
        }
        assert!(!Dialect::Fal.is_trigger());
    }
}

#[cfg(test)]
mod fal_tests {
    use super::*;

    /// The dev sources document lists the public key of the seed the
    /// simulator signs with, so its fal deliveries verify.
    #[test]
    fn the_dev_fal_source_lists_the_simulator_s_public_key() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../events/sources.dev.json");
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("file")).expect("JSON");
        let x = jobhook::domain::signature::fal::public_x(&FAL_DEV_SEED);
        assert_eq!(doc["sources"]["fal"]["public_keys"], json!([x]));
    }

    /// A completed request's status is read, then its output: what the
    /// simulator serves reads as the job's truth.
    #[test]
    fn a_completed_fal_request_reads_as_its_output_and_a_running_one_answers_202() {
        let profile = jobhook::domain::provider::profile("fal").expect("fal");
        let done = State {
            status: JobStatus::Completed,
            progress: None,
            first: false,
        };
        let status = Dialect::Fal.answer("sim-0001", Some(done));
        let read = profile.parse_poll(status.to_string().as_bytes()).expect("status");
        let output = Dialect::Fal.fal_output("sim-0001").to_string();
        let read = profile
            .parse_follow_up("sim-0001", read, output.as_bytes())
            .expect("output");
        assert_eq!(read.output_url, Dialect::Fal.output_url("sim-0001"));
        assert_eq!(Dialect::Fal.answer_code(&status), 200);
        let running = State {
            status: JobStatus::Processing,
            progress: Some(40),
            first: false,
        };
        assert_eq!(
            Dialect::Fal.answer_code(&Dialect::Fal.answer("sim-0001", Some(running))),
            202
        );
    }
}
