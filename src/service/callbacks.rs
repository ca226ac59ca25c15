//! Callbacks: when a verification or a batch that named a `callback_url`
//! is finished, its view (the JSON of `GET /v1/verifications/{id}` or
//! `GET /v1/batches/{id}`) is POSTed there, signed, and retried with
//! backoff until the receiver takes it or refuses it for good.
//!
//! Durable: the store queues the delivery in the very transaction that
//! finishes the job (whichever of its calls finishes it, see `JobStore`),
//! and each attempt's outcome is written back through the store, so a
//! restart resumes whatever was pending. Delivery is at least once: a
//! receiver dedupes on `X-Qtjudge-Delivery`, which stays the same across
//! attempts.
//!
//! No address filtering: whoever holds the service's token may make it POST
//! to any address it can reach (loopback included, which local pipelines use).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::service::jobs::Jobs;
use crate::service::metrics::CallbackOutcome;
use crate::service::store::{
    now_ms, BatchDetail, BatchRecord, CallbackAttempt, DeliveryState, JobRecord, PendingDelivery,
    StoreError,
};

/// Attempts per delivery unless `--callback-attempts` says otherwise.
pub const DEFAULT_ATTEMPTS: u32 = 8;
/// One attempt: connecting, sending and reading the status.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// The store is scanned this often even without news, so a missed
/// wake-up delays a delivery, never loses it.
const POLL: Duration = Duration::from_secs(5);
const MAX_URL_CHARS: usize = 2048;
/// How much of a refusing receiver's answer `last_error` keeps.
const EXCERPT_CHARS: usize = 200;

pub const EVENT_HEADER: &str = "x-qtjudge-event";
pub const DELIVERY_HEADER: &str = "x-qtjudge-delivery";
pub const TIMESTAMP_HEADER: &str = "x-qtjudge-timestamp";
pub const SIGNATURE_HEADER: &str = "x-qtjudge-signature";
// The events (`X-Qtjudge-Event`) are named by the store, which queues
// each delivery with its event.
pub use crate::service::store::{BATCH_FINISHED, VERIFICATION_FINISHED};

/// Checks a `callback_url`: an absolute http(s) URL with a host. The error
/// is a sentence for the client.
pub fn check_url(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.chars().count() > MAX_URL_CHARS {
        return Err(format!("`callback_url` is over {MAX_URL_CHARS} characters"));
    }
    let url = reqwest::Url::parse(text).map_err(|e| {
        format!("`callback_url` must be an absolute http or https URL; {text:?} is not ({e})")
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "`callback_url` must be an http or https URL, not {}:",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("`callback_url` {text:?} names no host"));
    }
    Ok(text.to_string())
}

/// `sha256=<hex>`: HMAC-SHA256 with the secret over `<timestamp>.<body>`.
/// The timestamp is inside the MAC so that a captured request cannot be
/// replayed later with a fresh one.
pub fn signature(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The wait after the `failed`-th failed attempt: 1 s, 2 s, 4 s, … 5 min at most.
pub fn backoff(failed: u32) -> Duration {
    let doublings = failed.saturating_sub(1).min(16);
    (FIRST_BACKOFF * 2u32.pow(doublings)).min(MAX_BACKOFF)
}

/// What one attempt got back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Status {
        code: u16,
        retry_after: Option<Duration>,
        /// The start of the response body, for `last_error`.
        excerpt: String,
    },
    /// No HTTP answer: refused, reset, DNS, TLS, or the timeout.
    Unreachable(String),
}

impl Answer {
    fn describe(&self) -> String {
        match self {
            Answer::Status { code, excerpt, .. } if excerpt.is_empty() => {
                format!("the receiver answered {code}")
            }
            Answer::Status { code, excerpt, .. } => {
                format!("the receiver answered {code}: {excerpt}")
            }
            Answer::Unreachable(why) => why.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    Retry,
    /// The receiver refused it: sending it again would not help.
    GiveUp,
}

pub fn classify(answer: &Answer) -> Verdict {
    match answer {
        Answer::Unreachable(_) => Verdict::Retry,
        Answer::Status { code, .. } => match code {
            200..=299 => Verdict::Delivered,
            408 | 429 | 500..=599 => Verdict::Retry,
            // Other 4xx, and 3xx: redirects are not followed (a POST
            // turned into a GET would lose the body).
            _ => Verdict::GiveUp,
        },
    }
}

/// The wait before the next attempt: the backoff, or longer when the
/// receiver asked for it (`Retry-After`), never over the cap.
pub fn next_wait(failed: u32, answer: &Answer) -> Duration {
    let asked = match answer {
        Answer::Status {
            retry_after: Some(wait),
            ..
        } => (*wait).min(MAX_BACKOFF),
        _ => Duration::ZERO,
    };
    backoff(failed).max(asked)
}

/// How the bodies are rendered: the API's own views, so that a callback
/// carries exactly what a GET would.
#[derive(Clone, Copy)]
pub struct Views {
    pub verification: fn(&JobRecord) -> Value,
    pub batch: fn(&BatchRecord) -> Value,
}

#[derive(Debug, Clone)]
pub struct CallbackConfig {
    /// Signs every request (`X-Qtjudge-Signature`) when set.
    pub secret: Option<String>,
    /// Attempts per delivery, the first included.
    pub max_attempts: u32,
}

/// The running deliveries.
pub struct Callbacks {
    stop: CancellationToken,
    supervisor: tokio::task::JoinHandle<()>,
}

impl Callbacks {
    /// Starts delivering what is pending now and whatever the workers
    /// finish from here on.
    pub fn start(
        jobs: Arc<Jobs>,
        config: CallbackConfig,
        views: Views,
    ) -> Result<Callbacks, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("qtjudge/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let stop = CancellationToken::new();
        let deliverer = Arc::new(Deliverer {
            jobs,
            client,
            config,
            views,
            stop: stop.clone(),
        });
        let supervisor = tokio::spawn(deliverer.supervise());
        Ok(Callbacks { stop, supervisor })
    }

    /// Stops at once: waits out no backoff and abandons attempts in
    /// flight. What was pending stays on disk for the next start.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.supervisor.await;
    }
}

struct Deliverer {
    jobs: Arc<Jobs>,
    client: reqwest::Client,
    config: CallbackConfig,
    views: Views,
    stop: CancellationToken,
}

/// Why a body could not be had.
enum NoBody {
    /// The verification or batch was deleted first: nothing left to send.
    Gone(String),
    /// The store failed: leave the delivery pending for a later scan.
    Store(StoreError),
}

impl Deliverer {
    /// Spawns one task per pending delivery (each sleeps through its own
    /// backoff), and looks for new ones whenever a job finishes.
    async fn supervise(self: Arc<Self>) {
        let mut running = JoinSet::new();
        let mut tasks: HashMap<tokio::task::Id, String> = HashMap::new();
        let mut active: HashSet<String> = HashSet::new();
        loop {
            // Subscribed before the scan, so a finish in between is not missed.
            let mut news = self.jobs.finished_news();
            match self.jobs.store.pending_callbacks().await {
                Ok(pending) => {
                    for p in pending {
                        if active.insert(p.id.clone()) {
                            let id = p.id.clone();
                            let task = running.spawn(self.clone().deliver(p));
                            tasks.insert(task.id(), id);
                        }
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot list pending callbacks"),
            }
            tokio::select! {
                _ = self.stop.cancelled() => break,
                _ = news.recv() => {}
                Some(ended) = running.join_next_with_id() => {
                    let task = match ended {
                        Ok((task, ())) => task,
                        Err(e) => {
                            tracing::error!(error = %e, "a callback delivery task failed");
                            e.id()
                        }
                    };
                    if let Some(id) = tasks.remove(&task) {
                        active.remove(&id);
                    }
                }
                _ = tokio::time::sleep(POLL) => {}
            }
        }
        running.shutdown().await;
    }

    async fn deliver(self: Arc<Self>, p: PendingDelivery) {
        let body = match self.body(&p).await {
            Ok(body) => body,
            Err(NoBody::Store(e)) => {
                tracing::error!(delivery = %p.id, error = %e, "cannot prepare a callback; it stays pending");
                self.pause().await;
                return;
            }
            Err(NoBody::Gone(why)) => {
                self.give_up(&p, p.attempts, why).await;
                return;
            }
        };
        let mut attempts = p.attempts;
        let mut due = p.next_attempt_ms;
        loop {
            let wait = Duration::from_millis((due - now_ms()).max(0) as u64);
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            let answer = tokio::select! {
                _ = self.stop.cancelled() => return,
                answer = self.attempt(&p, body.clone()) => answer,
            };
            attempts += 1;
            let verdict = classify(&answer);
            tracing::debug!(delivery = %p.id, url = %p.url, event = %p.event, attempt = attempts, outcome = %answer.describe(), "callback attempt");
            match verdict {
                Verdict::Delivered => {
                    let stored = self
                        .jobs
                        .store
                        .callback_attempted(
                            &p.id,
                            CallbackAttempt {
                                attempts,
                                state: DeliveryState::Delivered,
                                next_attempt_ms: due,
                                last_error: None,
                            },
                        )
                        .await;
                    if let Err(e) = stored {
                        // Left pending: it will be sent again (at least once).
                        tracing::error!(delivery = %p.id, error = %e, "cannot record a delivered callback");
                        self.pause().await;
                        return;
                    }
                    self.jobs
                        .metrics
                        .record_callback(CallbackOutcome::Delivered);
                    return;
                }
                Verdict::Retry if attempts < self.config.max_attempts => {
                    due = now_ms() + next_wait(attempts, &answer).as_millis() as i64;
                    let stored = self
                        .jobs
                        .store
                        .callback_attempted(
                            &p.id,
                            CallbackAttempt {
                                attempts,
                                state: DeliveryState::Pending,
                                next_attempt_ms: due,
                                last_error: Some(answer.describe()),
                            },
                        )
                        .await;
                    if let Err(e) = stored {
                        tracing::error!(delivery = %p.id, error = %e, "cannot record a callback attempt");
                        self.pause().await;
                        return;
                    }
                    self.jobs.metrics.record_callback(CallbackOutcome::Retried);
                }
                Verdict::Retry => {
                    let why = format!(
                        "no success after {attempts} attempts; the last: {}",
                        answer.describe()
                    );
                    self.give_up(&p, attempts, why).await;
                    return;
                }
                Verdict::GiveUp => {
                    let why = format!("refused: {}", answer.describe());
                    self.give_up(&p, attempts, why).await;
                    return;
                }
            }
        }
    }

    /// After a store error: the supervisor restarts a delivery as soon as
    /// its task ends, so ending at once would spin on a failing store.
    async fn pause(&self) {
        tokio::select! {
            _ = self.stop.cancelled() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }

    async fn give_up(&self, p: &PendingDelivery, attempts: u32, why: String) {
        tracing::warn!(delivery = %p.id, url = %p.url, event = %p.event, attempts, reason = %why, "callback given up");
        self.jobs.metrics.record_callback(CallbackOutcome::Failed);
        if let Err(e) = self
            .jobs
            .store
            .callback_attempted(
                &p.id,
                CallbackAttempt {
                    attempts,
                    state: DeliveryState::Failed,
                    next_attempt_ms: now_ms(),
                    last_error: Some(why),
                },
            )
            .await
        {
            tracing::error!(delivery = %p.id, error = %e, "cannot record a failed callback");
        }
    }

    /// The body, rendered once before the first attempt and then sent
    /// unchanged by every attempt (and after a restart).
    async fn body(&self, p: &PendingDelivery) -> Result<Bytes, NoBody> {
        let store = &self.jobs.store;
        if let Some(body) = store.callback_body(&p.id).await.map_err(NoBody::Store)? {
            return Ok(Bytes::from(body));
        }
        let view = if p.event == BATCH_FINISHED {
            store
                .batch_with(&p.subject, BatchDetail::Summary)
                .await
                .map_err(NoBody::Store)?
                .map(|b| (self.views.batch)(&b))
        } else {
            store
                .job(&p.subject)
                .await
                .map_err(NoBody::Store)?
                .map(|j| (self.views.verification)(&j))
        };
        let Some(view) = view else {
            return Err(NoBody::Gone(format!(
                "{} was deleted before its callback was sent",
                p.subject
            )));
        };
        let body = view.to_string();
        store
            .set_callback_body(&p.id, body.clone())
            .await
            .map_err(NoBody::Store)?;
        Ok(Bytes::from(body))
    }

    async fn attempt(&self, p: &PendingDelivery, body: Bytes) -> Answer {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut request = self
            .client
            .post(&p.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(EVENT_HEADER, &p.event)
            .header(DELIVERY_HEADER, &p.id)
            .header(TIMESTAMP_HEADER, timestamp.to_string());
        if let Some(secret) = &self.config.secret {
            request = request.header(
                SIGNATURE_HEADER,
                signature(secret.as_bytes(), timestamp, &body),
            );
        }
        match request.body(body).send().await {
            Err(e) => Answer::Unreachable(unreachable_reason(&e)),
            Ok(response) => {
                let code = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                Answer::Status {
                    code,
                    retry_after,
                    excerpt: excerpt(response).await,
                }
            }
        }
    }
}

/// The innermost cause is the one that says what happened (refused, reset…).
fn unreachable_reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return format!("no answer within {} s", ATTEMPT_TIMEOUT.as_secs());
    }
    let mut cause: &dyn std::error::Error = e;
    while let Some(source) = cause.source() {
        cause = source;
    }
    format!("cannot reach the receiver: {cause}")
}

/// The start of a response body, on one line.
async fn excerpt(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < EXCERPT_CHARS * 4 {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Computed independently:
    /// python3 -c 'import hmac,hashlib; print(hmac.new(b"s3cret", b"1700000000.{\"id\":\"abc\"}", hashlib.sha256).hexdigest())'
    #[test]
    fn the_signature_is_hmac_sha256_over_timestamp_dot_body() {
        assert_eq!(
            signature(b"s3cret", 1_700_000_000, br#"{"id":"abc"}"#),
            "sha256=72a3da75a9ce3af68e8c9684d47ea32e9cb023327faf846bf884edfa60e1130a"
        );
    }

    #[test]
    fn the_backoff_doubles_from_one_second_up_to_five_minutes() {
        let waits: Vec<u64> = (1..=11).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn a_retry_after_lengthens_the_wait_within_the_cap() {
        let status = |retry_after| Answer::Status {
            code: 429,
            retry_after,
            excerpt: String::new(),
        };
        assert_eq!(next_wait(1, &status(None)), Duration::from_secs(1));
        assert_eq!(
            next_wait(1, &status(Some(Duration::from_secs(30)))),
            Duration::from_secs(30)
        );
        assert_eq!(
            next_wait(3, &status(Some(Duration::from_secs(2)))),
            Duration::from_secs(4)
        );
        assert_eq!(
            next_wait(1, &status(Some(Duration::from_secs(86_400)))),
            MAX_BACKOFF
        );
    }

    #[test]
    fn server_faults_timeouts_and_throttling_are_retried_refusals_are_not() {
        let status = |code| Answer::Status {
            code,
            retry_after: None,
            excerpt: String::new(),
        };
        for code in [200, 201, 202, 204, 299] {
            assert_eq!(classify(&status(code)), Verdict::Delivered, "{code}");
        }
        for code in [408, 429, 500, 502, 503, 504, 599] {
            assert_eq!(classify(&status(code)), Verdict::Retry, "{code}");
        }
        for code in [301, 302, 307, 400, 401, 403, 404, 410, 413, 422] {
            assert_eq!(classify(&status(code)), Verdict::GiveUp, "{code}");
        }
        assert_eq!(
            classify(&Answer::Unreachable("connection refused".into())),
            Verdict::Retry
        );
    }

    #[test]
    fn only_absolute_http_urls_with_a_host_are_taken() {
        for good in [
            "http://127.0.0.1:9000/hook",
            "https://example.com/x?y=1",
            " http://localhost/ ",
        ] {
            assert!(check_url(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "not a url",
            "/relative/path",
            "example.com/hook",
            "ftp://example.com/",
            "file:///etc/passwd",
            "mailto:a@b.c",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
        assert!(check_url(&format!("http://a/{}", "x".repeat(3000))).is_err());
    }

    use crate::sandbox::{BoxFuture, Sandbox, SandboxError, SandboxOutcome, SandboxRequest};
    use crate::service::engine_watch::Engine;
    use crate::service::jobs::JobsConfig;
    use crate::service::store::{self, CallbackStatus, NewJob};
    use std::collections::VecDeque;
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    fn job(callback_url: Option<&str>) -> NewJob {
        NewJob {
            sample: None,
            task: "reset-conversation".into(),
            model: "m".into(),
            // No code: graded without the sandbox.
            output: "Sorry, I cannot help with that.".into(),
            metadata: None,
            callback_url: callback_url.map(String::from),
            upload: None,
            task_choice: None,
        }
    }

    /// A sandbox that is never reached: the answers here hold no code.
    struct NoSandbox;

    impl Sandbox for NoSandbox {
        fn name(&self) -> &'static str {
            "fake"
        }
        fn run(&self, _: SandboxRequest) -> BoxFuture<'_, Result<SandboxOutcome, SandboxError>> {
            Box::pin(async { Err(SandboxError::RunFailed("not used".into())) })
        }
    }

    fn jobs_in(dir: &Path) -> Arc<Jobs> {
        Jobs::new(
            store::open(dir).unwrap(),
            JobsConfig {
                workers: 1,
                max_queue: 10,
                tasks_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/tasks"),
                cache_dir: None,
                retention: None,
            },
            Arc::new(Engine::ready(Arc::new(NoSandbox), None, None)),
        )
    }

    const VIEWS: Views = Views {
        verification: |j| serde_json::json!({"id": j.id, "status": j.status, "callback": j.callback}),
        batch: |b| serde_json::json!({"id": b.id}),
    };

    /// What a receiver saw, and what it answers next (then 200).
    #[derive(Default)]
    struct Receiver {
        seen: Mutex<Vec<(axum::http::HeaderMap, String)>>,
        answers: Mutex<VecDeque<u16>>,
    }

    async fn receiver(answers: &[u16]) -> (Arc<Receiver>, String) {
        let state = Arc::new(Receiver::default());
        state.answers.lock().unwrap().extend(answers);
        let app = axum::Router::new()
            .route(
                "/hook",
                axum::routing::post(
                    |axum::extract::State(r): axum::extract::State<Arc<Receiver>>,
                     headers: axum::http::HeaderMap,
                     body: String| async move {
                        r.seen.lock().unwrap().push((headers, body));
                        let code = r.answers.lock().unwrap().pop_front().unwrap_or(200);
                        axum::http::StatusCode::from_u16(code).unwrap()
                    },
                ),
            )
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (state, url)
    }

    async fn settled(jobs: &Jobs, id: &str) -> CallbackStatus {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let job = jobs.store.job(id).await.unwrap().unwrap();
            if let Some(c) = job.callback.filter(|c| c.state != DeliveryState::Pending) {
                return c;
            }
            assert!(tokio::time::Instant::now() < deadline, "never settled");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test]
    async fn a_delivery_is_retried_after_a_server_fault_and_signed_every_time() {
        let dir = tempfile::tempdir().unwrap();
        let (receiver, url) = receiver(&[503]).await;
        let jobs = jobs_in(dir.path());
        let pool = jobs.start();
        let callbacks = Callbacks::start(
            jobs.clone(),
            CallbackConfig {
                secret: Some("k".into()),
                max_attempts: 3,
            },
            VIEWS,
        )
        .unwrap();
        let ids = jobs.submit(vec![job(Some(&url))], None).await.unwrap();
        let status = settled(&jobs, &ids[0]).await;
        assert_eq!(
            (status.state, status.attempts),
            (DeliveryState::Delivered, 2)
        );
        let seen = receiver.seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].1, seen[1].1, "every attempt sends the same body");
        let body: Value = serde_json::from_str(&seen[1].1).unwrap();
        assert_eq!(
            (body["id"].as_str(), body["status"].as_str()),
            (Some(ids[0].as_str()), Some("done"))
        );
        assert_eq!(body["callback"]["state"], "pending");
        for (headers, body) in &seen {
            let header = |name: &str| headers[name].to_str().unwrap().to_string();
            assert_eq!(header(EVENT_HEADER), VERIFICATION_FINISHED);
            assert_eq!(header("content-type"), "application/json");
            let timestamp: u64 = header(TIMESTAMP_HEADER).parse().unwrap();
            assert_eq!(
                header(SIGNATURE_HEADER),
                signature(b"k", timestamp, body.as_bytes())
            );
        }
        assert_eq!(seen[0].0[DELIVERY_HEADER], seen[1].0[DELIVERY_HEADER]);
        // The counter moves just after the store records the delivery.
        let lines = [
            "qtjudge_callbacks_total{outcome=\"delivered\"} 1",
            "qtjudge_callbacks_total{outcome=\"retried\"} 1",
            "qtjudge_callbacks_total{outcome=\"failed\"} 0",
        ];
        let mut metrics = String::new();
        for _ in 0..200 {
            metrics = jobs
                .metrics
                .render(&Default::default(), &jobs.engine.health());
            if lines.iter().all(|line| metrics.contains(line)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        for line in lines {
            assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
        }
        callbacks.shutdown().await;
        pool.shutdown(Duration::from_secs(5)).await;
    }

    #[tokio::test]
    async fn a_refusal_is_given_up_at_once_and_so_is_the_last_failed_attempt() {
        let dir = tempfile::tempdir().unwrap();
        let (refusing, refusing_url) = receiver(&[404]).await;
        let (failing, failing_url) = receiver(&[500, 500, 500]).await;
        let jobs = jobs_in(dir.path());
        let pool = jobs.start();
        let callbacks = Callbacks::start(
            jobs.clone(),
            CallbackConfig {
                secret: None,
                max_attempts: 2,
            },
            VIEWS,
        )
        .unwrap();
        let ids = jobs
            .submit(
                vec![job(Some(&refusing_url)), job(Some(&failing_url))],
                None,
            )
            .await
            .unwrap();
        let refused = settled(&jobs, &ids[0]).await;
        assert_eq!(
            (refused.state, refused.attempts),
            (DeliveryState::Failed, 1)
        );
        assert!(
            refused.last_error.as_deref().unwrap().contains("404"),
            "{refused:?}"
        );
        let failed = settled(&jobs, &ids[1]).await;
        assert_eq!((failed.state, failed.attempts), (DeliveryState::Failed, 2));
        assert!(
            failed
                .last_error
                .as_deref()
                .unwrap()
                .contains("after 2 attempts"),
            "{failed:?}"
        );
        assert_eq!(refusing.seen.lock().unwrap().len(), 1);
        assert_eq!(failing.seen.lock().unwrap().len(), 2);
        assert!(
            !refusing.seen.lock().unwrap()[0]
                .0
                .contains_key(SIGNATURE_HEADER),
            "no secret, no signature"
        );
        callbacks.shutdown().await;
        pool.shutdown(Duration::from_secs(5)).await;
    }

    #[tokio::test]
    async fn an_unreachable_receiver_is_retried_and_a_shutdown_does_not_wait_for_the_backoff() {
        let dir = tempfile::tempdir().unwrap();
        // A port nobody listens on (bound, then closed).
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", closed.local_addr().unwrap());
        drop(closed);
        let jobs = jobs_in(dir.path());
        let pool = jobs.start();
        let callbacks = Callbacks::start(
            jobs.clone(),
            CallbackConfig {
                secret: None,
                max_attempts: 8,
            },
            VIEWS,
        )
        .unwrap();
        let ids = jobs.submit(vec![job(Some(&url))], None).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let status = loop {
            let c = jobs
                .store
                .job(&ids[0])
                .await
                .unwrap()
                .unwrap()
                .callback
                .unwrap();
            if c.attempts >= 3 {
                break c;
            }
            assert!(tokio::time::Instant::now() < deadline, "{c:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(status.state, DeliveryState::Pending);
        assert!(
            status
                .last_error
                .as_deref()
                .unwrap()
                .contains("cannot reach"),
            "{status:?}"
        );
        // The next attempt is 4 s away: stopping must not wait for it.
        let started = std::time::Instant::now();
        callbacks.shutdown().await;
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        pool.shutdown(Duration::from_secs(5)).await;
        let still = jobs
            .store
            .job(&ids[0])
            .await
            .unwrap()
            .unwrap()
            .callback
            .unwrap();
        assert_eq!(
            still.state,
            DeliveryState::Pending,
            "kept for the next start"
        );
    }
}
