//! A scenario's expectations on the screen (`shows_turns`, `hides_turns`),
//! judged on the supervisor's frames: pixels read outside the candidate's
//! process, at moments the supervisor chose (after a turn's reply, after
//! its own click). Which replies a frame shows is read from their marks
//! (`grading::screen`), so grey text or a dark theme are seen as a person
//! sees them.

use crate::grading::screen::Frame;
use crate::scenario::{fill, Expectation};

/// The frame judged after a scenario's step: the last one the supervisor
/// took after the `turn`'s reply, or after the `click`.
pub(super) fn frame_after(step: &str, turn_number: usize) -> String {
    if step == "click" {
        "click:1".to_string()
    } else {
        format!("reply:{turn_number}")
    }
}

fn listed(turns: &[usize]) -> String {
    match turns {
        [] => "no turn's reply".to_string(),
        [one] => format!("turn {one}'s reply"),
        many => {
            let words: Vec<String> = many.iter().map(usize::to_string).collect();
            format!("the replies of turns {}", words.join(", "))
        }
    }
}

/// Why `expectation` does not hold on the screen after `step_name`, if it
/// does not. `turn` is the number of turns typed by then; `frames` the
/// run's frames, or why they could not be read (then nothing holds).
pub(super) fn unmet_on_screen(
    expectation: &Expectation,
    step: &str,
    step_name: &str,
    turn: usize,
    frames: &Result<Vec<Frame>, String>,
) -> Option<String> {
    let wanted = if expectation.shows_turns.is_empty() {
        &expectation.hides_turns
    } else {
        &expectation.shows_turns
    };
    let reason = |found: String| {
        fill(
            &expectation.reason,
            &[
                ("turn", turn.to_string()),
                ("expected", listed(wanted)),
                ("found", found),
            ],
        )
    };
    let frames = match frames {
        Ok(frames) => frames,
        Err(why) => {
            return Some(format!(
                "{} (the screen could not be read from outside the app: {why})",
                reason("nothing readable".into())
            ))
        }
    };
    let name = frame_after(step, turn);
    let Some(frame) = frames.iter().rev().find(|f| f.name == name) else {
        return Some(format!(
            "{} (the supervisor took no frame of the screen after {step_name})",
            reason("no frame".into())
        ));
    };
    let marks = frame.marks();
    let shown: Vec<usize> = (1..=marks.len()).filter(|&t| marks[t - 1]).collect();
    let missing = expectation.shows_turns.iter().any(|t| !shown.contains(t));
    let still = expectation.hides_turns.iter().any(|t| shown.contains(t));
    // A reply never recognised on the screen proves nothing by its absence
    // (drawn too small, elided): each hidden turn was seen before.
    let seen_before = |t: usize| {
        frames
            .iter()
            .filter(|f| f.at_ms < frame.at_ms)
            .any(|f| f.marks()[t - 1])
    };
    if let Some(never) = expectation
        .hides_turns
        .iter()
        .find(|&&t| !still && !seen_before(t))
    {
        return Some(format!(
            "{} (turn {never}'s reply was never recognisable on the screen before frame `{name}`, so its absence there proves nothing)",
            reason(listed(&shown))
        ));
    }
    (missing || still).then(|| {
        format!(
            "{} (frame `{name}` at {:.0} ms showed {})",
            reason(listed(&shown)),
            frame.at_ms,
            listed(&shown)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::tests_support::frame;

    fn expectation(shows: &[usize], hides: &[usize]) -> Expectation {
        Expectation {
            json_path: Default::default(),
            present: false,
            equals: None,
            contains: None,
            absent: false,
            alive: false,
            holds_turns: false,
            shows_turns: shows.to_vec(),
            hides_turns: hides.to_vec(),
            failure: "transcript_not_cleared".into(),
            reason: "after turn {turn} the screen showed {found}".into(),
        }
    }

    /// Frames taken 100 ms apart, in the order given.
    fn frames(list: &[(&str, &[usize])]) -> Result<Vec<Frame>, String> {
        Ok(list
            .iter()
            .enumerate()
            .map(|(i, (name, turns))| {
                Frame::decode(&frame(name, 100.0 * (i + 1) as f64, turns)).unwrap()
            })
            .collect())
    }

    #[test]
    fn the_frame_after_the_step_is_read_for_each_turns_reply() {
        let after_click = frames(&[("reply:2", &[1, 2]), ("click:1", &[])]);
        let hides = expectation(&[], &[1, 2]);
        assert_eq!(
            unmet_on_screen(&hides, "click", "click_1", 2, &after_click),
            None
        );
        let still = frames(&[("reply:2", &[1, 2]), ("click:1", &[2])]);
        let why = unmet_on_screen(&hides, "click", "click_1", 2, &still).expect("turn 2 shown");
        assert!(why.contains("showed turn 2's reply"), "{why}");
        let never_seen = frames(&[("reply:2", &[2]), ("click:1", &[])]);
        let why = unmet_on_screen(&hides, "click", "click_1", 2, &never_seen)
            .expect("turn 1 was never seen");
        assert!(
            why.contains("turn 1's reply was never recognisable"),
            "{why}"
        );
        let shows = expectation(&[1, 2], &[]);
        assert_eq!(
            unmet_on_screen(&shows, "turn", "turn_2", 2, &after_click),
            None
        );
        let why = unmet_on_screen(&shows, "turn", "turn_2", 2, &frames(&[("reply:2", &[2])]))
            .expect("turn 1 missing");
        assert!(why.contains("frame `reply:2`"), "{why}");
    }

    #[test]
    fn nothing_holds_without_the_steps_frame_or_a_readable_screen() {
        let hides = expectation(&[], &[1]);
        let why = unmet_on_screen(&hides, "turn", "turn_2", 2, &frames(&[("reply:1", &[1])]))
            .expect("no frame after turn 2");
        assert!(why.contains("no frame of the screen after turn_2"), "{why}");
        let unreadable = Err("no vnc".to_string());
        let why = unmet_on_screen(&hides, "click", "click_1", 2, &unreadable)
            .expect("an unreadable screen proves nothing");
        assert!(why.contains("could not be read"), "{why}");
    }
}
