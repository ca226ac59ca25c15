//! Serves the router over HTTP/1.1 with the connection hygiene a port that
//! untrusted clients can reach needs, which `axum::serve` leaves out:
//!
//! - a connection that has not sent a request head within the header
//!   timeout is closed (hyper's header-read timer, re-armed before every
//!   head, so it is also the keep-alive idle timeout);
//! - the number of open connections is capped below the process's file
//!   limit; at the cap the oldest connection with no request in flight
//!   (half-open or idle) makes room, so a flood of half-open connections
//!   cannot keep `/healthz` from being answered;
//! - at shutdown, connections with no request in flight close at once and
//!   the others may finish theirs within the drain period, however many
//!   clients are attached.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// File descriptors kept for everything but client connections: the
/// store, the sandbox engine's socket, callbacks, run folders, logs.
pub const RESERVED_FDS: u64 = 256;

/// The most bytes of a request head the server buffers (hyper's minimum
/// is 8 KiB; its default of ~400 KiB would let each half-open connection
/// hold that much). A longer head is answered 431 and closed by hyper; the
/// router refuses smaller oversized heads with a JSON error.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// How the server treats its connections.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// Open connections at most (clamped by [`connection_cap`]).
    pub max_connections: usize,
    /// Time a client has to send a request head, and to send the next one
    /// on a kept-alive connection.
    pub header_timeout: Duration,
    /// Time a client has to send a request's whole body once its head
    /// came: a body trickled in a byte at a time cannot hold a connection.
    pub body_timeout: Duration,
    /// At shutdown, time requests in flight have to finish.
    pub drain: Duration,
}

/// The error a request body gives when its time is up (see [`ConnectionLimits::body_timeout`]).
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyTimedOut(pub Duration);

/// A request body that fails once its deadline has passed.
struct DeadlineBody {
    inner: Incoming,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
    timeout: Duration,
}

impl hyper::body::Body for DeadlineBody {
    type Data = bytes::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        use std::task::Poll;
        let this = &mut *self;
        if let Poll::Ready(frame) = std::pin::Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|result| result.map_err(Into::into)));
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(BodyTimedOut(this.timeout)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// What the connections did, for `/metrics`.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    pub open: AtomicUsize,
    pub accepted: AtomicU64,
    /// Closed at the cap to make room for a new one.
    pub evicted: AtomicU64,
    /// Refused at the cap because every open one had a request in flight.
    pub refused: AtomicU64,
}

impl ConnectionStats {
    /// Prometheus text lines.
    pub fn render(&self) -> String {
        let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
        format!(
            "# HELP qtjudge_http_connections_open Client connections open now.\n\
             # TYPE qtjudge_http_connections_open gauge\n\
             qtjudge_http_connections_open {}\n\
             # HELP qtjudge_http_connections_total Client connections by what became of them at accept.\n\
             # TYPE qtjudge_http_connections_total counter\n\
             qtjudge_http_connections_total{{outcome=\"accepted\"}} {}\n\
             qtjudge_http_connections_total{{outcome=\"evicted_other\"}} {}\n\
             qtjudge_http_connections_total{{outcome=\"refused\"}} {}\n",
            self.open.load(Ordering::Relaxed),
            load(&self.accepted),
            load(&self.evicted),
            load(&self.refused),
        )
    }
}

/// Raises the soft limit on open files to the hard one (as most servers
/// do) and returns it; None where it cannot be read.
pub fn raise_file_limit() -> Option<u64> {
    // SAFETY: getrlimit/setrlimit only read and write the struct given.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = limit.rlim_max;
            }
        }
        Some(limit.rlim_cur)
    }
}

/// The connection cap: the one asked for, kept below the file limit with
/// [`RESERVED_FDS`] to spare (and at least 16).
pub fn connection_cap(requested: usize, file_limit: Option<u64>) -> usize {
    let room = file_limit
        .map(|limit| limit.saturating_sub(RESERVED_FDS).max(16))
        .unwrap_or(u64::MAX);
    requested
        .min(usize::try_from(room).unwrap_or(usize::MAX))
        .max(1)
}

/// Serves `router` on `listener` until `shutdown` completes, then drains.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    stats: Arc<ConnectionStats>,
    shutdown: impl Future<Output = ()>,
) {
    let open = Arc::new(OpenConnections::default());
    let stopping = CancellationToken::new();
    let hard_stop = CancellationToken::new();
    let tracker = TaskTracker::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut accept_errors = 0u64;
    loop {
        let stream = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // EMFILE and friends: the connection stays in the
                    // backlog; retry shortly rather than spin.
                    accept_errors += 1;
                    if accept_errors.is_power_of_two() {
                        tracing::warn!(%error, count = accept_errors, "cannot accept a connection");
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        if open.len() >= limits.max_connections {
            if !open.evict_one_idle() {
                stats.refused.fetch_add(1, Ordering::Relaxed);
                drop(stream);
                continue;
            }
            stats.evicted.fetch_add(1, Ordering::Relaxed);
        }
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        let connection = open.add(stopping.child_token());
        tracker.spawn(serve_connection(
            stream,
            router.clone(),
            limits,
            connection,
            open.clone(),
            stats.clone(),
            hard_stop.clone(),
        ));
    }
    drop(listener);
    tracker.close();
    stopping.cancel();
    if tokio::time::timeout(limits.drain, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = open.len(),
            "requests still running after the drain period: closing their connections"
        );
        hard_stop.cancel();
        tracker.wait().await;
    }
}

async fn serve_connection(
    stream: TcpStream,
    router: Router,
    limits: ConnectionLimits,
    connection: Connection,
    open: Arc<OpenConnections>,
    stats: Arc<ConnectionStats>,
    hard_stop: CancellationToken,
) {
    stats.open.fetch_add(1, Ordering::Relaxed);
    let _ = stream.set_nodelay(true);
    let in_flight = connection.in_flight.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let guard = InFlight::enter(&in_flight);
        let router = router.clone();
        async move {
            let request = request.map(|inner| {
                axum::body::Body::new(DeadlineBody {
                    inner,
                    deadline: Box::pin(tokio::time::sleep(limits.body_timeout)),
                    timeout: limits.body_timeout,
                })
            });
            let response = router
                .oneshot(request)
                .await
                .unwrap_or_else(|never| match never {});
            // The request counts as in flight until its body is sent.
            Ok::<_, std::convert::Infallible>(response.map(|body| {
                axum::body::Body::new(body.map_frame(move |frame| {
                    let _ = &guard;
                    frame
                }))
            }))
        }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        .serve_connection(TokioIo::new(stream), service);
    let mut served = std::pin::pin!(served);
    tokio::select! {
        _ = served.as_mut() => {}
        _ = connection.close.cancelled() => {
            // Half-open or idle: nothing to lose, close now.
            if connection.in_flight.load(Ordering::Acquire) > 0 {
                served.as_mut().graceful_shutdown();
                tokio::select! {
                    _ = served.as_mut() => {}
                    _ = hard_stop.cancelled() => {}
                }
            }
        }
    }
    open.remove(connection.id);
    stats.open.fetch_sub(1, Ordering::Relaxed);
}

/// Counts a request in flight on its connection while alive.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(counter: &Arc<AtomicUsize>) -> InFlight {
        counter.fetch_add(1, Ordering::AcqRel);
        InFlight(counter.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

struct Connection {
    id: u64,
    in_flight: Arc<AtomicUsize>,
    close: CancellationToken,
}

/// The open connections, oldest first.
#[derive(Default)]
struct OpenConnections {
    next_id: AtomicU64,
    list: Mutex<VecDeque<(u64, Arc<AtomicUsize>, CancellationToken)>>,
}

impl OpenConnections {
    fn len(&self) -> usize {
        self.lock().len()
    }

    fn add(&self, close: CancellationToken) -> Connection {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let in_flight = Arc::new(AtomicUsize::new(0));
        self.lock()
            .push_back((id, in_flight.clone(), close.clone()));
        Connection {
            id,
            in_flight,
            close,
        }
    }

    fn remove(&self, id: u64) {
        let mut list = self.lock();
        if let Some(at) = list.iter().position(|(i, _, _)| *i == id) {
            list.remove(at);
        }
    }

    /// Closes the oldest connection with no request in flight; false when
    /// every one has a request running.
    fn evict_one_idle(&self) -> bool {
        let mut list = self.lock();
        let Some(at) = list
            .iter()
            .position(|(_, in_flight, _)| in_flight.load(Ordering::Acquire) == 0)
        else {
            return false;
        };
        if let Some((_, _, close)) = list.remove(at) {
            close.cancel();
        }
        true
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, VecDeque<(u64, Arc<AtomicUsize>, CancellationToken)>> {
        // A panic while holding this lock leaves the list consistent.
        self.list
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_stays_below_the_file_limit() {
        assert_eq!(connection_cap(1024, Some(65_536)), 1024);
        assert_eq!(
            connection_cap(1024, Some(1024)),
            1024 - RESERVED_FDS as usize
        );
        assert_eq!(connection_cap(1024, Some(100)), 16);
        assert_eq!(connection_cap(1024, None), 1024);
    }

    #[test]
    fn eviction_takes_the_oldest_connection_without_a_request() {
        let open = OpenConnections::default();
        let first = open.add(CancellationToken::new());
        let second = open.add(CancellationToken::new());
        let third = open.add(CancellationToken::new());
        let _busy = InFlight::enter(&first.in_flight);
        assert!(open.evict_one_idle());
        assert!(
            !first.close.is_cancelled(),
            "a connection with a request in flight was evicted"
        );
        assert!(second.close.is_cancelled());
        assert!(!third.close.is_cancelled());
        assert_eq!(open.len(), 2);
        let _also_busy = InFlight::enter(&third.in_flight);
        assert!(!open.evict_one_idle(), "every connection left is busy");
    }
}
