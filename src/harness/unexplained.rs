//! Text a request after the reset holds that nothing clean explains.
//!
//! Matching the old turns' markers and words finds them as written; an app
//! that keeps the history and sends it disguised (another alphabet's look-
//! alike letters, rot13, reversed, spaced out, hex, base32, HTML entities,
//! character codes…) carries none of them. So the plane also asks the
//! converse: after the reset, a request may hold only what the app sent
//! before any history existed (its frame: system prompt, model name,
//! options, headers), the new turns' prompts and replies, and the new turns'
//! context numbers. Anything else is counted, and past a small budget the
//! request fails closed, as one that could not be read whole does.
//!
//! The budget leaves room for what honest apps add after a reset (a new
//! session id, a timestamp, a short greeting or note) and is smaller than
//! one old turn (its prompt and reply), disguised.

use std::collections::HashSet;

use super::Turn;

/// Characters of unexplained text a request after the reset may hold.
pub(super) const BUDGET_CHARS: usize = 160;

/// Tokens a request after the reset may hold freely.
pub(super) struct Vocabulary {
    allowed: HashSet<String>,
}

impl Vocabulary {
    /// `frame_texts`: what `turns::request_text` read of the requests sent
    /// before turn 2's (the frame, with turn 1's prompt in it). Words only
    /// the old turns use are taken out of the frame: they are history.
    pub(super) fn new<'a>(
        frame_texts: impl IntoIterator<Item = &'a str>,
        turns: &[Turn],
        reset_turn: usize,
    ) -> Vocabulary {
        let turn_tokens = |range: std::ops::Range<usize>| {
            let mut set = HashSet::new();
            for turn in turns.get(range).into_iter().flatten() {
                for text in [&turn.prompt, &turn.reply] {
                    set.extend(tokens(&crate::turns::normalise(text)).map(str::to_string));
                }
            }
            set
        };
        let new = turn_tokens(reset_turn..turns.len());
        let old = turn_tokens(0..reset_turn.min(turns.len()));
        let mut allowed: HashSet<String> = frame_texts
            .into_iter()
            .flat_map(tokens)
            .filter(|t| new.contains(*t) || !old.contains(*t))
            .map(str::to_string)
            .collect();
        allowed.extend(new);
        // `/api/generate` context numbers the fake server gave the new turns.
        for k in reset_turn..turns.len() {
            let base = crate::turns::CONTEXT_BASE + crate::turns::CONTEXT_STRIDE * k as i64;
            allowed.extend((base..base + crate::turns::CONTEXT_STRIDE).map(|n| n.to_string()));
        }
        Vocabulary { allowed }
    }

    /// Why `text` (a request's `turns::request_text`) holds more than the
    /// budget of unexplained text, quoting some of it; `None` when it does not.
    pub(super) fn unexplained(&self, text: &str) -> Option<String> {
        let mut count = 0usize;
        let mut quoted: Vec<&str> = Vec::new();
        for token in tokens(text) {
            if self.allowed.contains(token) {
                continue;
            }
            count += token.chars().count();
            if quoted.len() < 8 {
                quoted.push(token);
            }
        }
        (count > BUDGET_CHARS).then(|| {
            let sample: Vec<String> = quoted
                .iter()
                .map(|t| t.chars().take(24).collect::<String>())
                .collect();
            format!(
                "{count} characters of text that is neither in the app's requests before the \
                 conversation began nor in the new turns (e.g. `{}`), which may be the old turns \
                 in disguise",
                sample.join(" ")
            )
        })
    }
}

/// Runs of letters and digits, and runs of other visible characters, as
/// tokens: a disguise by punctuation (Morse, entities) is counted too.
pub(super) fn tokens(text: &str) -> impl Iterator<Item = &str> {
    #[derive(PartialEq, Clone, Copy)]
    enum Class {
        Word,
        Symbol,
        Space,
    }
    let class = |c: char| {
        if c.is_alphanumeric() {
            Class::Word
        } else if c.is_whitespace() {
            Class::Space
        } else {
            Class::Symbol
        }
    };
    let mut rest = text;
    std::iter::from_fn(move || {
        let start = rest.find(|c: char| class(c) != Class::Space)?;
        rest = &rest[start..];
        let first = class(rest.chars().next()?);
        let end = rest
            .char_indices()
            .find(|&(_, c)| class(c) != first)
            .map_or(rest.len(), |(i, _)| i);
        let (token, tail) = rest.split_at(end);
        rest = tail;
        Some(token)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocabulary(turns: &[Turn], frame: &str) -> Vocabulary {
        Vocabulary::new([frame], turns, 2)
    }

    fn request(parts: &[&str]) -> String {
        crate::turns::normalise(&parts.join("\n"))
    }

    #[test]
    fn tokens_split_words_symbols_and_spaces() {
        let found: Vec<&str> = tokens("Hello,  wörld!! 42-x\n&#72;").collect();
        assert_eq!(
            found,
            ["Hello", ",", "wörld", "!!", "42", "-", "x", "&#", "72", ";"]
        );
    }

    #[test]
    fn a_clean_request_after_the_reset_is_explained() {
        let turns = crate::turns::new_turns();
        let frame = request(&[
            "model",
            "llama3",
            "You are a helpful assistant.",
            &turns[0].prompt,
        ]);
        let v = vocabulary(&turns, &frame);
        let after = request(&[
            "model",
            "llama3",
            "You are a helpful assistant.",
            &turns[2].prompt,
            &turns[2].reply,
            &turns[3].prompt,
            "session 0c8e1b52-4c8b-4a57-9b1e-5d0f3a7c9e21 2026-12-06T18:23:12",
            "Conversation reset. How can I help you today?",
        ]);
        assert_eq!(v.unexplained(&after), None);
    }

    #[test]
    fn the_old_turns_in_disguise_are_not() {
        let turns = crate::turns::new_turns();
        let frame = request(&["model", "llama3", &turns[0].prompt]);
        let v = vocabulary(&turns, &frame);
        let old = format!(
            "{} {} {} {}",
            turns[0].prompt, turns[0].reply, turns[1].prompt, turns[1].reply
        );
        let rot13: String = old
            .chars()
            .map(|c| match c {
                'a'..='m' | 'A'..='M' => (c as u8 + 13) as char,
                'n'..='z' | 'N'..='Z' => (c as u8 - 13) as char,
                _ => c,
            })
            .collect();
        let reversed: String = old.chars().rev().collect();
        let spaced: String = old.chars().flat_map(|c| [c, ' ']).collect();
        let hex: String = old.bytes().map(|b| format!("{b:02x}")).collect();
        let entities: String = old.chars().map(|c| format!("&#{};", c as u32)).collect();
        let cyrillic: String = old
            .chars()
            .map(|c| match c {
                'a' => 'а',
                'e' => 'е',
                'o' => 'о',
                'p' => 'р',
                'c' => 'с',
                _ => c,
            })
            .collect();
        let codes = old
            .chars()
            .map(|c| (c as u32).to_string())
            .collect::<Vec<_>>()
            .join(",");
        for (name, disguise) in [
            ("rot13", rot13),
            ("reversed", reversed),
            ("spaced", spaced),
            ("hex", hex),
            ("entities", entities),
            ("look-alike letters", cyrillic),
            ("character codes", codes),
        ] {
            let after = request(&["model", "llama3", &disguise, &turns[2].prompt]);
            assert!(v.unexplained(&after).is_some(), "{name} passed: {disguise}");
        }
    }

    #[test]
    fn words_only_the_old_turns_used_are_not_part_of_the_frame() {
        let turns = crate::turns::new_turns();
        let frame = request(&["model", "llama3", &turns[0].prompt]);
        let v = vocabulary(&turns, &frame);
        // Turn 1's prompt without its marker and words, three times over:
        // its name and phrasing came from the old turn, not from the app.
        let stripped = turns[0]
            .prompt
            .replace(&turns[0].prompt_marker, "")
            .replace(&turns[0].words[0], "")
            .replace(&turns[0].words[1], "");
        let carried = [stripped.as_str(); 4].join(" ");
        let after = request(&["model", "llama3", &carried, &turns[2].prompt]);
        assert!(v.unexplained(&after).is_some());
    }

    #[test]
    fn the_new_turns_context_numbers_are_explained() {
        let turns = crate::turns::new_turns();
        let v = vocabulary(&turns, "model llama3");
        let context: Vec<String> = (0..40).map(|i| (9200 + i % 8).to_string()).collect();
        assert_eq!(v.unexplained(&context.join(" ")), None);
        let old: Vec<String> = (0..50).map(|i| (9000 + i % 8).to_string()).collect();
        assert!(v.unexplained(&old.join(" ")).is_some());
    }
}
