//! News between replicas through `LISTEN/NOTIFY`: a transaction that
//! queues jobs or finishes one says so on its schema's channel (delivered
//! at commit, never for a rollback), and every store listens on one
//! connection of its own, reconnecting when it is cut. Idle workers wake
//! at once instead of at their next poll, and a waiter on one replica
//! learns of a job another finished. A hint only: the workers still poll.

use std::time::Duration;

use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::sync::{broadcast, mpsc};
use tokio_postgres::{AsyncMessage, NoTls, Transaction};
use tokio_util::sync::CancellationToken;

use super::super::StoreEvent;

/// The payload of "jobs were queued".
pub(super) const QUEUED: &str = "queued";

/// The channel of a schema's news: schemas of one database (tests, or
/// several deployments) do not hear each other. Hashed: a channel's name
/// is an identifier, at most 63 bytes.
pub(super) fn channel(schema: &str) -> String {
    let digest = hex::encode(Sha256::digest(schema.as_bytes()));
    format!("qtjudge_{}", &digest[..16])
}

/// The payload of "this job finished".
pub(super) fn finished(id: &str, batch_id: Option<&str>) -> String {
    format!("finished\t{id}\t{}", batch_id.unwrap_or(""))
}

fn parse(payload: &str) -> Option<StoreEvent> {
    if payload == QUEUED {
        return Some(StoreEvent::Queued);
    }
    let mut parts = payload.split('\t');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("finished"), Some(id), batch) => Some(StoreEvent::Finished {
            id: id.to_string(),
            batch_id: batch.filter(|b| !b.is_empty()).map(String::from),
        }),
        _ => None,
    }
}

/// Says `payload` on `channel` when `tx` commits.
pub(super) async fn notify(
    tx: &Transaction<'_>,
    channel: &str,
    payload: &str,
) -> Result<(), tokio_postgres::Error> {
    tx.execute("SELECT pg_notify($1, $2)", &[&channel, &payload])
        .await
        .map(drop)
}

/// Hands what `channel` hears to `events` until `stop`; reconnects (after
/// a pause) whenever the connection ends.
pub(super) async fn listen(
    config: tokio_postgres::Config,
    channel: String,
    events: broadcast::Sender<StoreEvent>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            ended = listen_once(&config, &channel, &events) => {
                if let Err(e) = ended {
                    tracing::debug!(error = %e, "the store's news connection ended; reconnecting");
                }
            }
        }
        // Whatever was said meanwhile is lost: the pollers catch up.
        let _ = events.send(StoreEvent::Queued);
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

async fn listen_once(
    config: &tokio_postgres::Config,
    channel: &str,
    events: &broadcast::Sender<StoreEvent>,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    // The connection delivers notifications only to whoever polls it.
    let (heard, mut news) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if heard.send(n.payload().to_string()).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "the store's news connection failed");
                    return;
                }
            }
        }
    });
    client.batch_execute(&format!("LISTEN {channel}")).await?;
    while let Some(payload) = news.recv().await {
        if let Some(event) = parse(&payload) {
            let _ = events.send(event);
        }
    }
    driver.abort();
    // The driver ended: so did the connection.
    client.batch_execute("SELECT 1").await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_read_back_as_the_events_they_announce() {
        assert_eq!(parse(QUEUED), Some(StoreEvent::Queued));
        assert_eq!(
            parse(&finished("j", Some("b"))),
            Some(StoreEvent::Finished {
                id: "j".into(),
                batch_id: Some("b".into())
            })
        );
        assert_eq!(
            parse(&finished("j", None)),
            Some(StoreEvent::Finished {
                id: "j".into(),
                batch_id: None
            })
        );
        assert_eq!(parse("something else"), None);
        assert!(channel("a_schema_name_that_is_long_enough_to_matter_here_really").len() < 63);
    }
}
