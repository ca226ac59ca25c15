//! A scenario's expectations on the screen (`shows_turns`, `hides_turns`),
//! judged on the supervisor's frames: pixels read outside the candidate's
//! process, at moments the supervisor chose (after a turn's reply, after
//! its own click). Which replies a frame shows is read from their marks
//! (`grading::screen`), so grey text or a dark theme are seen as a person
//! sees them.

use crate::grading::screen::Frame;
use crate::scenario::{fill, Expectation};

/// The frame judged after a scenario's step: the last one the supervisor
/// took after the `turn`'s reply, or after the Nth click (`click_N`).
pub(super) fn frame_after(place: &StepPlace) -> String {
    match place.name.strip_prefix("click_") {
        Some(nth) if place.step == "click" => format!("click:{nth}"),
        _ => format!("reply:{}", place.turn),
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

/// Where in the scenario a screen expectation is judged.
pub(super) struct StepPlace<'a> {
    /// `turn` or `click`.
    pub(super) step: &'a str,
    /// The harness's name of the step (`turn_3`, `click_1`).
    pub(super) name: &'a str,
    /// How many turns were typed by then.
    pub(super) turn: usize,
    /// Turns a later step expects shown again: hidden only until then.
    pub(super) shown_later: &'a [usize],
}

/// The turns whose reply marks a frame shows (1 is the first).
fn shown_in(frame: &Frame) -> Vec<usize> {
    let marks = frame.marks();
    (1..=marks.len()).filter(|&t| marks[t - 1]).collect()
}

/// Why `expectation` does not hold on the screen after the step, if it
/// does not. `frames` are the run's frames in the order taken, or why they
/// could not be read (then nothing holds). A turn hidden after the step
/// must stay hidden in every later frame (the final one too): an old
/// reply drawn again after the supervisor's frame is seen.
pub(super) fn unmet_on_screen(
    expectation: &Expectation,
    place: &StepPlace,
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
                ("turn", place.turn.to_string()),
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
    let name = frame_after(place);
    let Some(index) = frames.iter().rposition(|f| f.name == name) else {
        return Some(format!(
            "{} (the supervisor took no frame of the screen after {})",
            reason("no frame".into()),
            place.name
        ));
    };
    let unmet = |frame: &Frame, shown: &[usize]| {
        format!(
            "{} (frame `{}` at {:.0} ms showed {})",
            reason(listed(shown)),
            frame.name,
            frame.at_ms,
            listed(shown)
        )
    };
    let frame = &frames[index];
    let shown = shown_in(frame);
    if expectation.shows_turns.iter().any(|t| !shown.contains(t)) {
        return Some(unmet(frame, &shown));
    }
    if expectation.hides_turns.iter().any(|t| shown.contains(t)) {
        return Some(unmet(frame, &shown));
    }
    // A reply never recognised on the screen proves nothing by its absence
    // (drawn too small, elided): each hidden turn was seen before.
    let before: Vec<Vec<usize>> = frames[..index]
        .iter()
        .filter(|f| f.at_ms < frame.at_ms)
        .map(shown_in)
        .collect();
    if let Some(never) = expectation
        .hides_turns
        .iter()
        .find(|t| !before.iter().any(|b| b.contains(t)))
    {
        return Some(format!(
            "{} (turn {never}'s reply was never recognisable on the screen before frame `{name}`, so its absence there proves nothing)",
            reason(listed(&shown))
        ));
    }
    // Later frames: the turns a later step expects back are free.
    let stays_hidden: Vec<usize> = expectation
        .hides_turns
        .iter()
        .copied()
        .filter(|t| !place.shown_later.contains(t))
        .collect();
    if stays_hidden.is_empty() {
        return None;
    }
    frames[index + 1..].iter().find_map(|later| {
        let seen = shown_in(later);
        stays_hidden
            .iter()
            .any(|t| seen.contains(t))
            .then(|| unmet(later, &seen))
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

    fn place(step: &'static str, name: &'static str, turn: usize) -> StepPlace<'static> {
        StepPlace {
            step,
            name,
            turn,
            shown_later: &[],
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
            unmet_on_screen(&hides, &place("click", "click_1", 2), &after_click),
            None
        );
        let still = frames(&[("reply:2", &[1, 2]), ("click:1", &[2])]);
        let why =
            unmet_on_screen(&hides, &place("click", "click_1", 2), &still).expect("turn 2 shown");
        assert!(why.contains("showed turn 2's reply"), "{why}");
        let never_seen = frames(&[("reply:2", &[2]), ("click:1", &[])]);
        let why = unmet_on_screen(&hides, &place("click", "click_1", 2), &never_seen)
            .expect("turn 1 was never seen");
        assert!(
            why.contains("turn 1's reply was never recognisable"),
            "{why}"
        );
        let shows = expectation(&[1, 2], &[]);
        assert_eq!(
            unmet_on_screen(&shows, &place("turn", "turn_2", 2), &after_click),
            None
        );
        let why = unmet_on_screen(
            &shows,
            &place("turn", "turn_2", 2),
            &frames(&[("reply:2", &[2])]),
        )
        .expect("turn 1 missing");
        assert!(why.contains("frame `reply:2`"), "{why}");
    }

    /// Each click is judged on its own frame: the second click's
    /// expectation reads `click:2`, not the first click's frame.
    #[test]
    fn each_click_is_judged_on_the_frame_after_it() {
        let hides = expectation(&[], &[3]);
        let run = frames(&[
            ("reply:2", &[1, 2]),
            ("click:1", &[]),
            ("reply:3", &[3]),
            ("click:2", &[3]),
        ]);
        let why = unmet_on_screen(&hides, &place("click", "click_2", 3), &run)
            .expect("the second click left turn 3 on the screen");
        assert!(why.contains("frame `click:2`"), "{why}");
        let cleared = frames(&[
            ("reply:2", &[1, 2]),
            ("click:1", &[]),
            ("reply:3", &[3]),
            ("click:2", &[]),
        ]);
        assert_eq!(
            unmet_on_screen(&hides, &place("click", "click_2", 3), &cleared),
            None
        );
    }

    /// An old reply drawn again after the step's frame (a timer, the
    /// next event) is seen in a later frame, the final one too; unless a
    /// later step expects that turn shown again.
    #[test]
    fn a_turn_hidden_stays_hidden_to_the_end_unless_expected_back() {
        let hides = expectation(&[], &[1, 2]);
        let back = frames(&[
            ("reply:2", &[1, 2]),
            ("click:1", &[]),
            ("checkpoint:final", &[1, 2]),
        ]);
        let why = unmet_on_screen(&hides, &place("click", "click_1", 2), &back)
            .expect("the old turns came back");
        assert!(why.contains("frame `checkpoint:final`"), "{why}");
        let expected_back = StepPlace {
            shown_later: &[1, 2],
            ..place("click", "click_1", 2)
        };
        assert_eq!(unmet_on_screen(&hides, &expected_back, &back), None);
    }

    #[test]
    fn nothing_holds_without_the_steps_frame_or_a_readable_screen() {
        let hides = expectation(&[], &[1]);
        let why = unmet_on_screen(
            &hides,
            &place("turn", "turn_2", 2),
            &frames(&[("reply:1", &[1])]),
        )
        .expect("no frame after turn 2");
        assert!(why.contains("no frame of the screen after turn_2"), "{why}");
        let unreadable = Err("no vnc".to_string());
        let why = unmet_on_screen(&hides, &place("click", "click_1", 2), &unreadable)
            .expect("an unreadable screen proves nothing");
        assert!(why.contains("could not be read"), "{why}");
    }
}
