//! The screen plane: the supervisor's frames read for the turns' reply
//! marks before and after the reset, and the screenshots kept.

use serde_json::Value;

use super::requests::newest_user_text;
use super::{Artifact, Turn};
use crate::grading::screen::{Frame, ScreenCheck};

/// The longest the reset's transition may be skipped for: the supervisor
/// waits 1.5 s at most for the window to settle, plus the frames' reading.
const MAX_SETTLING_MS: f64 = 4000.0;

/// Reads the supervisor's frames: which turns' marks each showed, before
/// and after the reset, and the screenshots users see (the last frame
/// before the reset, the first after it, the last of the run).
pub(super) fn read_frames(
    result: &Value,
    reset_at: f64,
    after_from: f64,
    turns: &[Turn],
) -> (ScreenCheck, Vec<Artifact>) {
    let mut check = ScreenCheck::default();
    let unreadable = |why: String| {
        Some(format!(
            "the window's pixels could not be read from outside the app: {why}"
        ))
    };
    let frames = match decode_frames(result) {
        Ok(frames) => frames,
        Err(why) => {
            check.unreadable = unreadable(why);
            return (check, Vec::new());
        }
    };
    check.frames = frames.len();
    let third_reply_at = result["requests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| {
            newest_user_text(&r["body"]).contains(
                turns
                    .get(2)
                    .map(|t| t.prompt_marker.as_str())
                    .unwrap_or("\u{0}"),
            )
        })
        .filter_map(|r| r["at_ms"].as_f64())
        .fold(f64::INFINITY, f64::min);
    // The reset's own transition (a fade running) is not judged: frames
    // from the end of the click until the supervisor's frame of the
    // settled window (`checkpoint:after_reset`, taken once two frames were
    // alike, within a bound) are skipped; that frame and every later one
    // are. Without that frame after the click, nothing is skipped.
    let after_from = frames
        .iter()
        .find(|f| {
            f.name == "checkpoint:after_reset"
                && f.at_ms >= after_from
                && f.at_ms <= after_from + MAX_SETTLING_MS
        })
        .map_or(after_from, |f| f.at_ms);
    let mut seen_after_third = false;
    for frame in &frames {
        if frame.at_ms >= reset_at && frame.at_ms < after_from {
            continue; // the click, and the reset's transition
        }
        let marks = frame.marks();
        let shown: Vec<usize> = (0..marks.len())
            .filter(|&i| marks[i])
            .map(|i| i + 1)
            .collect();
        if frame.at_ms < reset_at {
            check.before.extend(shown.iter().filter(|&&t| t <= 2));
        } else if frame.at_ms >= after_from {
            for &t in shown.iter().filter(|&&t| t <= 2) {
                check.old_after.push(format!(
                    "frame `{}` at {:.0} ms showed turn {t}'s reply",
                    frame.name, frame.at_ms
                ));
            }
            check.after.extend(shown.iter().filter(|&&t| t >= 3));
            seen_after_third |= frame.at_ms >= third_reply_at && shown.iter().any(|&t| t >= 3);
        }
    }
    check.before.sort_unstable();
    check.before.dedup();
    check.after.sort_unstable();
    check.after.dedup();
    check.old_after.truncate(8);
    if check.old_after.is_empty() {
        if check.before.is_empty() {
            check.unreadable = unreadable(
                "no reply of turns 1 and 2 was recognisable in the frames taken before the reset, so the reset's effect on screen cannot be seen (a reply hidden, elided, or drawn too small)".into(),
            );
        } else if !seen_after_third {
            check.unreadable = unreadable(
                "no reply after the reset was recognisable in the frames taken after it".into(),
            );
        }
    }
    let pick = |frame: Option<&Frame>, name: &str| {
        frame.map(|f| {
            let data = crate::grading::screen::to_png(&f.image);
            Artifact {
                name: name.to_string(),
                media_type: "image/png".into(),
                size: data.len(),
                path: None,
                data,
            }
        })
    };
    let before = frames.iter().rev().find(|f| f.at_ms < reset_at);
    let after = frames.iter().find(|f| f.at_ms >= after_from);
    let last = frames.last().filter(|f| f.at_ms >= after_from);
    let artifacts = [
        pick(before, "before_reset.png"),
        pick(after, "after_reset.png"),
        pick(last, "final.png"),
    ]
    .into_iter()
    .flatten()
    .filter(|a| a.size > 0)
    .collect();
    (check, artifacts)
}

/// The supervisor's frames of a run, in the order taken, or why the screen
/// could not be read (no `vnc` platform, a reading error, frames dropped
/// or malformed): a pass on the screen needs every one read.
pub(super) fn decode_frames(result: &Value) -> Result<Vec<Frame>, String> {
    let screen = &result["screen"];
    if screen["platform"].as_str() != Some("vnc") {
        return Err("its Qt binding has no `vnc` platform plugin in the sandbox image (see README, Security model)".into());
    }
    if let Some(error) = screen["error"].as_str() {
        return Err(error.chars().take(300).collect());
    }
    if screen["frames_dropped"].as_u64().unwrap_or(0) > 0 {
        return Err("the frames were larger than the judge keeps".into());
    }
    let mut frames = result["frames"]
        .as_array()
        .into_iter()
        .flatten()
        .take(32)
        .map(|record| Frame::decode(record).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    frames.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
    Ok(frames)
}
