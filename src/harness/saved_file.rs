//! A scenario's `answer_file_dialog` step judged (issue 21): the file
//! name typed into the dialog by the supervisor's keys, and the file the
//! app saved there, read by the supervisor (not by the app) once the step
//! ended. Both come in the supervisor's `saved_files` list, one entry per
//! dialog, and are read here as untrusted bytes: bounded, every field
//! checked, anything missing or malformed is "not seen", never a pass.

use serde_json::Value;

use crate::scenario::{fill, Expectation};
use crate::turns::{joined_within_chunks, normalise, Turn};

/// The most text of a saved file the host reads (the supervisor caps it
/// lower; a larger claim is cut, not trusted).
const MAX_TEXT_CHARS: usize = 512 * 1024;

/// What the supervisor saw of one file dialog.
#[derive(Debug, Default, PartialEq)]
pub(super) struct SavedFile {
    /// The keys of the file name were all typed, and Return struck.
    pub(super) typed: bool,
    /// The file read (its path: the one typed, or the one the app gave it
    /// with its own extension), if one was.
    pub(super) read_path: Option<String>,
    /// Its text, as UTF-8 (bytes that are not read as U+FFFD).
    pub(super) text: String,
    /// Why no file was read, in the supervisor's words.
    pub(super) why_not: String,
}

/// The supervisor's entry for the `nth` file dialog (0-based), if any.
pub(super) fn saved_file(saved_files: &Value, nth: usize) -> SavedFile {
    let Some(entry) = saved_files.as_array().and_then(|all| all.get(nth)) else {
        return SavedFile {
            why_not: "the supervisor read no file for this dialog".into(),
            ..SavedFile::default()
        };
    };
    let typing = &entry["typing"];
    let typed = typing["typed"].as_u64().is_some_and(|n| n > 0)
        && typing["typed"].as_u64() == typing["of"].as_u64()
        && typing["pressed"].as_bool() == Some(true);
    let file = &entry["file"];
    let read_path = file["read"]
        .as_str()
        .map(|p| p.chars().take(200).collect::<String>());
    let text: String = match file["text"].as_str() {
        Some(text) if read_path.is_some() => text.chars().take(MAX_TEXT_CHARS).collect(),
        _ => String::new(),
    };
    let why_not = file["error"]
        .as_str()
        .unwrap_or("no file was found there")
        .chars()
        .take(300)
        .collect();
    SavedFile {
        typed,
        read_path,
        text,
        why_not,
    }
}

/// Why `file` does not meet `expectation`, if it does not. `before` are
/// the turns typed before the dialog (for `holds_turns`).
pub(super) fn unmet_on_file(
    expectation: &Expectation,
    path: &str,
    file: &SavedFile,
    before: &[Turn],
) -> Option<String> {
    let mut fields = vec![("path", path.to_string())];
    let Some(read) = &file.read_path else {
        fields.push(("found", format!("no file ({})", file.why_not)));
        fields.push(("expected", "a file".into()));
        return Some(fill(&expectation.reason, &fields));
    };
    if read != path {
        fields[0].1 = read.clone();
    }
    let normalised = normalise(&file.text);
    let joined = joined_within_chunks(&normalised);
    let holds = |needle: &str| {
        let needle = normalise(needle);
        normalised.contains(&needle) || joined.contains(&joined_within_chunks(&needle))
    };
    if expectation.present {
        return None;
    }
    if let Some(wanted) = expectation.contains.as_ref().and_then(Value::as_str) {
        if holds(wanted) {
            return None;
        }
        fields.push(("expected", format!("{wanted:?}")));
        fields.push(("found", excerpt(&file.text)));
        return Some(fill(&expectation.reason, &fields));
    }
    if expectation.holds_turns {
        let mut missing = Vec::new();
        for (i, turn) in before.iter().enumerate() {
            if !holds(&turn.prompt_marker) {
                missing.push(format!("turn {}'s prompt", i + 1));
            }
            if !holds(&turn.reply_marker) {
                missing.push(format!("turn {}'s reply", i + 1));
            }
        }
        if missing.is_empty() {
            return None;
        }
        fields.push(("expected", format!("all {} turns", before.len())));
        fields.push(("found", format!("no {}", missing.join(", "))));
        fields.push(("missing", missing.join(", ")));
        return Some(fill(&expectation.reason, &fields));
    }
    None
}

/// The start of a file's text for a report, on one line.
fn excerpt(text: &str) -> String {
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(120)
        .collect();
    if text.chars().count() > 120 {
        format!("{line:?}…")
    } else {
        format!("{line:?}")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn expectation(kind: &str) -> Expectation {
        let mut e: Expectation = serde_json::from_value(json!({
            "failure": "not_saved",
            "reason": "{path}: {found}",
        }))
        .unwrap();
        match kind {
            "present" => e.present = true,
            "holds_turns" => e.holds_turns = true,
            _ => e.contains = Some(json!(kind)),
        }
        e
    }

    fn entry(text: &str) -> Value {
        json!([{
            "typing": {"typed": 16, "of": 16, "pressed": true},
            "file": {"read": "/tmp/chat-log.txt", "text": text},
        }])
    }

    #[test]
    fn every_turn_saved_meets_holds_turns_whatever_the_format() {
        let turns = &crate::turns::new_turns()[..2];
        let plain: String = turns
            .iter()
            .map(|t| format!("You: {}\nModel: {}\n", t.prompt, t.reply))
            .collect();
        // JSON escapes the reply's block glyphs; the markers are ASCII.
        let as_json = serde_json::to_string(&json!(turns
            .iter()
            .map(|t| json!({"user": t.prompt, "assistant": t.reply}))
            .collect::<Vec<_>>()))
        .unwrap()
        .replace('\u{2588}', "\\u2588");
        for text in [plain.clone(), as_json, plain.to_uppercase()] {
            let file = saved_file(&entry(&text), 0);
            assert!(file.typed);
            assert_eq!(
                unmet_on_file(
                    &expectation("holds_turns"),
                    "/tmp/chat-log.txt",
                    &file,
                    turns
                ),
                None,
                "{text}"
            );
        }
    }

    #[test]
    fn a_missing_turn_or_file_is_named() {
        let turns = &crate::turns::new_turns()[..2];
        // Only the last reply saved.
        let file = saved_file(&entry(&turns[1].reply), 0);
        let why = unmet_on_file(
            &expectation("holds_turns"),
            "/tmp/chat-log.txt",
            &file,
            turns,
        )
        .unwrap();
        assert!(
            why.contains("turn 1's prompt, turn 1's reply, turn 2's prompt"),
            "{why}"
        );
        assert!(!why.contains("turn 2's reply"), "{why}");
        let none = json!([{"typing": {"typed": 3, "of": 16, "pressed": true}, "file": {"read": null, "error": "no file /tmp/chat-log.txt"}}]);
        let file = saved_file(&none, 0);
        assert!(!file.typed);
        let why =
            unmet_on_file(&expectation("present"), "/tmp/chat-log.txt", &file, turns).unwrap();
        assert_eq!(
            why,
            "/tmp/chat-log.txt: no file (no file /tmp/chat-log.txt)"
        );
        let why = unmet_on_file(
            &expectation("hello"),
            "/tmp/chat-log.txt",
            &saved_file(&entry("bye"), 0),
            turns,
        )
        .unwrap();
        assert!(why.contains("\"bye\""), "{why}");
    }

    #[test]
    fn malformed_entries_are_no_file() {
        for bad in [
            json!(null),
            json!([]),
            json!([1]),
            json!([{"typing": {"typed": "16", "of": 16, "pressed": true}, "file": {"read": 5, "text": "x"}}]),
            json!([{"typing": {"typed": 0, "of": 0, "pressed": true}, "file": {"text": "x"}}]),
        ] {
            let file = saved_file(&bad, 0);
            assert!(!file.typed, "{bad}");
            assert_eq!(file.read_path, None, "{bad}");
            assert!(file.text.is_empty(), "{bad}");
        }
    }
}
