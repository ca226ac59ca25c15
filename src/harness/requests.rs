//! The fake server's recordings read: each request's turn and what of
//! other turns it carried, the baseline (turn 2 carries turn 1) and the
//! next-request plane (every request from the reset on).

use serde_json::Value;

use super::request_text::{self, RequestImage};
use super::server_store::ServerStore;
use super::unexplained::{over_budget, Vocabulary};
use super::{RequestSummary, Turn};
use crate::report_channel::Channel;
use crate::turns::TURNS_BEFORE_RESET;

/// The next-request plane, from the fake server's recordings.
pub(super) struct RequestPlane {
    /// `Some(true)` when no request after the reset carried turn 1 or 2 and
    /// turns 3 and 4 reached the model API.
    pub(super) cleared: Option<bool>,
    /// Which request carried what, when one did.
    pub(super) old_turn_in: Option<String>,
    /// The turn after the reset that never reached the model API.
    pub(super) missing_turn: Option<String>,
}

/// Every request from the reset on is judged, not only the first of turn
/// 3: a clean decoy sent beside the real request passes nothing.
pub(super) fn next_request_plane(
    requests: &[RequestSummary],
    reset_at: f64,
    dropped: u64,
) -> RequestPlane {
    let after: Vec<&RequestSummary> = requests
        .iter()
        .filter(|r| r.at_ms.unwrap_or(f64::INFINITY) >= reset_at)
        .collect();
    let unexplained = over_budget(after.iter().map(|r| r.novel.as_ref()));
    let old: Vec<(&RequestSummary, &Option<String>)> = after
        .into_iter()
        .zip(&unexplained)
        // A request "for" turn 1 or 2 after the reset (an old prompt as its
        // newest message) carries that turn as much as one quoting it; one
        // that could not be read whole may (fail closed), as may one with
        // more text than a clean request explains.
        .filter(|(r, unexplained)| {
            r.carried_turns.iter().any(|&t| t <= 2)
                || r.turn.is_some_and(|t| t <= 1)
                || r.unreadable.is_some()
                || unexplained.is_some()
        })
        .collect();
    let old_turn_in = if dropped > 0 {
        Some(format!(
            "the app sent more requests than are recorded ({dropped} past the cap), so not every request after the reset could be read"
        ))
    } else {
        old.first().map(|&(r, unexplained)| {
            let carried = match (r.turn, &r.unreadable) {
                (Some(t), _) if t <= 1 => {
                    format!("turn {}'s prompt as its newest message", t + 1)
                }
                _ if r.carried_turns.iter().any(|&t| t <= 2) => r.carries.join(", "),
                (_, Some(why)) => format!(
                    "a body that could not be read whole ({why}), so it may carry the old turns"
                ),
                _ => unexplained.clone().unwrap_or_default(),
            };
            format!(
                "request #{} {} {} carried {}{}",
                r.seq,
                r.method,
                r.path,
                carried,
                if old.len() > 1 {
                    format!(", and {} more after the reset", old.len() - 1)
                } else {
                    String::new()
                }
            )
        })
    };
    let missing_turn = [2usize, 3].iter().find_map(|&t| {
        (!requests.iter().any(|r| r.turn == Some(t))).then(|| {
            format!(
                "turn {} seemed to work but no request carrying it reached the model API",
                t + 1
            )
        })
    });
    let cleared = if old_turn_in.is_some() {
        Some(false)
    } else if missing_turn.is_some() {
        None
    } else {
        Some(true)
    };
    RequestPlane {
        cleared,
        old_turn_in,
        missing_turn,
    }
}

/// The text of the newest user message (chat APIs) or the prompt (generate).
pub(super) fn newest_user_text(body: &Value) -> String {
    if let Some(messages) = body["messages"].as_array() {
        for message in messages.iter().rev() {
            if message["role"] == "user" {
                return match &message["content"] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
            }
        }
        return String::new();
    }
    body["prompt"].as_str().unwrap_or_default().to_string()
}

/// Context arrays of `/api/generate` replies (`turns::CONTEXT_BASE`).
pub(super) fn carries_context_of(body: &Value, turn_index: usize) -> bool {
    use crate::turns::{CONTEXT_BASE, CONTEXT_STRIDE};
    let first = CONTEXT_BASE + CONTEXT_STRIDE * turn_index as i64;
    body["context"].as_array().is_some_and(|context| {
        context
            .iter()
            .filter_map(Value::as_i64)
            .any(|n| (first..first + CONTEXT_STRIDE).contains(&n))
    })
}

/// What of a recorded request is searched besides its parsed body: its
/// path and query (percent-decoded), its headers' names and values, the
/// text of a body that is not JSON, and every string of a body the
/// supervisor summarised.
fn raw_texts(request: &Value) -> Vec<String> {
    let mut texts = Vec::new();
    if let Some(path) = request["path"].as_str() {
        texts.push(path.to_string());
        texts.push(request_text::percent_decoded(path));
    }
    for header in request["headers"].as_array().into_iter().flatten().take(64) {
        for part in header.as_array().into_iter().flatten().take(2) {
            if let Some(text) = part.as_str() {
                texts.push(text.to_string());
                texts.push(request_text::percent_decoded(text));
            }
        }
    }
    for key in ["body_text", "strings_text"] {
        if let Some(text) = request[key].as_str() {
            texts.push(text.to_string());
        }
    }
    texts
}

/// How many images in requests one run's judgement decodes: each may take
/// up to `screen::MAX_FRAME_PIXELS` pixels of memory, one at a time.
const MAX_IMAGES_PER_RUN: usize = 64;

pub(super) fn summarise_requests(
    requests: &Value,
    turns: &[Turn],
    literals: &[String],
) -> Vec<RequestSummary> {
    let mut summaries = Vec::new();
    let mut images_read = 0;
    // What the app sent up to turn 1's request: its frame, read before any
    // history existed (`unexplained`). What it sent after (until turn 2's)
    // may already hold turn 1's reply in disguise, so it explains nothing.
    let mut frame_texts: Vec<String> = Vec::new();
    let mut turn_one_sent = false;
    let mut vocabulary: Option<Vocabulary> = None;
    let mut server_store = ServerStore::default();
    for request in requests.as_array().into_iter().flatten().take(1000) {
        let body = &request["body"];
        // The turn a request is for: the newest prompt marker its newest
        // user message holds, read as a person would (`turns::normalise`).
        let newest = crate::turns::normalise(&newest_user_text(body));
        let turn = (0..turns.len())
            .rev()
            .find(|&i| newest.contains(turns[i].prompt_marker.as_str()));
        let raw = raw_texts(request);
        let whole = request_text::request_text(body, &raw);
        if vocabulary.is_none() && turn.is_some_and(|t| t >= 1) {
            vocabulary = Some(Vocabulary::new(
                std::mem::take(&mut frame_texts).iter().map(String::as_str),
                turns,
                TURNS_BEFORE_RESET,
                literals,
            ));
        }
        // Also read with the punctuation inside words taken out: `uku-lele`.
        let searched = format!(
            "{whole}\n{}\n{}",
            crate::turns::joined_within_chunks(&whole),
            request_text::decoded_code_runs(&whole)
        );
        let novel = match &vocabulary {
            Some(vocabulary) => Some(vocabulary.novel(&whole)),
            None => {
                if turn == Some(0) || !turn_one_sent {
                    frame_texts.push(whole.clone());
                }
                turn_one_sent |= turn == Some(0);
                None
            }
        };
        let mut unreadable = request["unreadable"].as_str().map(|why| {
            let why: String = why.chars().take(300).collect();
            if why.is_empty() {
                "unreadable".to_string()
            } else {
                why
            }
        });
        // The reply marks of the images it carries, read as the screen's.
        let mut in_images = vec![false; turns.len()];
        for image in request_text::request_images(body, &raw) {
            let why = match image {
                RequestImage::Png(bytes) if images_read < MAX_IMAGES_PER_RUN => {
                    images_read += 1;
                    match crate::grading::pixels::decode_png(
                        &bytes,
                        crate::grading::screen::MAX_FRAME_PIXELS,
                    ) {
                        Ok(image) => {
                            let marks = crate::grading::screen::marks_in(&image);
                            for (seen, &mark) in in_images.iter_mut().zip(marks.iter()) {
                                *seen |= mark;
                            }
                            continue;
                        }
                        Err(e) => format!("an image it carries could not be decoded ({e})"),
                    }
                }
                RequestImage::Png(_) | RequestImage::TooMany => {
                    "it carries more or larger images than the host reads".to_string()
                }
                RequestImage::Other(kind) => {
                    format!("it carries an image the host does not read ({kind})")
                }
            };
            unreadable.get_or_insert(why);
        }
        // An image without marks, or a file of any format, may still show
        // the old turns to a model that reads it.
        if let Some(why) = request_text::carried_binary(body, &raw) {
            unreadable.get_or_insert(why);
        }
        let mut carries = Vec::new();
        let mut carried_turns = Vec::new();
        for (i, t) in turns.iter().enumerate() {
            if Some(i) == turn {
                continue;
            }
            let mut found = crate::turns::traces_of(t, &searched);
            if carries_context_of(body, i) {
                found.push(format!("context of turn {}", i + 1));
            }
            if in_images.get(i).copied().unwrap_or(false) {
                found.push("its reply mark, in an image".into());
            }
            if !found.is_empty() {
                carried_turns.push(i + 1);
                carries.extend(found.into_iter().map(|f| format!("turn {}: {f}", i + 1)));
            }
        }
        // What the app stored on the model server, and what a request
        // gets back from it by naming it (`server_store`).
        let holds: Vec<usize> = (0..turns.len())
            .filter(|&i| {
                !crate::turns::traces_of(&turns[i], &searched).is_empty()
                    || carries_context_of(body, i)
            })
            .map(|i| i + 1)
            .collect();
        for (t, name) in server_store.read(request, &whole, &holds) {
            if Some(t - 1) != turn && !carried_turns.contains(&t) {
                carried_turns.push(t);
                carries.push(format!(
                    "turn {t}: kept in the model `{name}` the app made on the server"
                ));
            }
        }
        carried_turns.sort_unstable();
        carries.truncate(12);
        summaries.push(RequestSummary {
            seq: request["seq"].as_u64().unwrap_or(0),
            method: request["method"]
                .as_str()
                .unwrap_or_default()
                .chars()
                .take(16)
                .collect(),
            path: request["path"]
                .as_str()
                .unwrap_or_default()
                .chars()
                .take(200)
                .collect(),
            at_ms: request["at_ms"].as_f64(),
            turn,
            carries,
            carried_turns,
            unreadable,
            novel,
        });
    }
    summaries
}

/// Turn 2's request must carry turn 1 (its prompt, its reply, its words or
/// its context array); otherwise the app keeps no conversation to reset.
pub(super) fn baseline_problem(requests: &[RequestSummary], channel: &Channel) -> Option<String> {
    if !channel.ok("turn_2") {
        return None;
    }
    let Some(second) = requests.iter().find(|r| r.turn == Some(1)) else {
        return Some(
            "turn 2 was displayed but no request carrying it reached the model API".into(),
        );
    };
    if second.carried_turns.contains(&1) {
        None
    } else {
        Some("no conversation memory to reset: the second request did not carry the first turn (each request carries only its own prompt)".into())
    }
}
