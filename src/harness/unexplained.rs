//! Text a request after the reset holds that nothing clean explains.
//!
//! Matching the old turns' markers and words finds them as written; an app
//! that keeps the history and sends it disguised (another alphabet's look-
//! alike letters, rot13, reversed, hex, character codes…) carries none of
//! them. So the plane also asks the converse: after the reset, a request may
//! hold only what the app sent before any history existed (its frame: system
//! prompt, model name, options, headers) and the new turns' prompts and
//! replies. Anything else is counted, run-wide, and past a small budget the
//! request fails closed, as one that could not be read whole does.
//!
//! The budgets leave room for what honest apps add after a reset (a new
//! session id, ids and timestamps per message, a short greeting or note) and
//! are smaller than one old turn (its prompt and reply), disguised.

use std::collections::{HashMap, HashSet};

use super::Turn;

/// Characters of unexplained words a run's requests after the reset may hold.
pub(super) const BUDGET_CHARS: usize = 160;

/// Characters of unexplained codes (runs of digits and hex letters with a
/// digit in them: ids, timestamps, numbers) they may hold besides: honest
/// apps put a uuid and a time on every message.
pub(super) const CODE_BUDGET_CHARS: usize = 480;

/// How many times over a request after the reset may hold a token of the
/// frame or of the new turns: an honest app sends each about once (twice
/// leaves room for a prompt repeated in a title request or a template); a
/// codebook of them (the NATO alphabet in the system prompt, two of the new
/// prompt's words as bits) needs each again and again.
const REPEATS_ALLOWED: usize = 2;

/// Tokens a request after the reset may hold, each up to a number of times.
pub(super) struct Vocabulary {
    allowed: HashMap<String, usize>,
    /// The answer's own string literals, normalised, as one pattern: a
    /// system prompt the reset installs is text the answer wrote, not
    /// history. One pass over a request whatever their number.
    literals: Option<regex::Regex>,
}

/// Longest piece of a literal matched (a longer one explains its start).
const MAX_LITERAL_CHARS: usize = 2000;

/// Shortest literal taken as explained text, and how many are kept.
const MIN_LITERAL_CHARS: usize = 12;
const MAX_LITERALS: usize = 500;

/// The string literals of a Python source, as pieces of text an app may
/// send verbatim: escapes read, f-string fields cut out, short pieces
/// dropped. A plain reading, not a parser: a piece it gets wrong only
/// explains less.
pub fn string_literals(source: &str) -> Vec<String> {
    static PATTERN: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let pattern = PATTERN.get_or_init(|| {
        regex::Regex::new(
            r#"(?s)"""(.*?)"""|'''(.*?)'''|"((?:[^"\\\n]|\\.)*)"|'((?:[^'\\\n]|\\.)*)'"#,
        )
        .expect("a valid pattern")
    });
    let mut out = Vec::new();
    for captures in pattern.captures_iter(source) {
        let Some(body) = (1..=4).find_map(|i| captures.get(i)) else {
            continue;
        };
        let text = body
            .as_str()
            .replace("\\n", "\n")
            .replace("\\t", "\t")
            .replace("\\\"", "\"")
            .replace("\\'", "'")
            .replace("\\\\", "\\");
        for piece in text.split(['{', '}']) {
            if piece.chars().count() >= MIN_LITERAL_CHARS && out.len() < MAX_LITERALS {
                out.push(piece.to_string());
            }
        }
    }
    out
}

impl Vocabulary {
    /// `frame_texts`: what `request_text::request_text` read of the requests sent
    /// before turn 2's (the frame, with turn 1's prompt in it). What only
    /// the old turns hold (their markers, code words and the name given in
    /// turn 1) is taken out of it: that is history, not frame. Common words
    /// the old turns also use stay: an app's long system prompt has them.
    pub(super) fn new<'a>(
        frame_texts: impl IntoIterator<Item = &'a str>,
        turns: &[Turn],
        reset_turn: usize,
        literals: &[String],
    ) -> Vocabulary {
        let split = reset_turn.min(turns.len());
        // The new turns' prompts and replies, each token as often as they hold it.
        let mut new: HashMap<String, usize> = HashMap::new();
        for turn in &turns[split..] {
            for text in [&turn.prompt, &turn.reply] {
                for token in tokens(&crate::turns::normalise(text)) {
                    *new.entry(token.to_string()).or_default() += 1;
                }
            }
        }
        let old: HashSet<String> = turns[..split]
            .iter()
            .flat_map(crate::turns::distinctive_tokens)
            .filter(|t| !new.contains_key(t))
            .flat_map(|t| shifted_forms(&t))
            .collect();
        // The frame's tokens, each as often as the request of the frame
        // that holds it most.
        let mut allowed: HashMap<String, usize> = HashMap::new();
        for text in frame_texts {
            let mut counts: HashMap<&str, usize> = HashMap::new();
            for token in tokens(text).filter(|t| !old.contains(*t)) {
                *counts.entry(token).or_default() += 1;
            }
            for (token, count) in counts {
                let most = allowed.entry(token.to_string()).or_default();
                *most = (*most).max(count);
            }
        }
        for (token, count) in new {
            *allowed.entry(token).or_default() += count;
        }
        for count in allowed.values_mut() {
            *count *= REPEATS_ALLOWED;
        }
        let mut pieces: Vec<String> = literals
            .iter()
            .map(|l| crate::turns::normalise(l))
            .filter(|l| l.trim().chars().count() >= MIN_LITERAL_CHARS)
            .map(|l| regex::escape(&l.chars().take(MAX_LITERAL_CHARS).collect::<String>()))
            .take(MAX_LITERALS)
            .collect();
        // Longest first: where two literals overlap, the longer explains.
        pieces.sort_by_key(|p| std::cmp::Reverse(p.len()));
        pieces.dedup();
        // A pattern too large to build explains nothing (counts more).
        let literals = (!pieces.is_empty())
            .then(|| regex::Regex::new(&pieces.join("|")).ok())
            .flatten();
        Vocabulary { allowed, literals }
    }

    /// The tokens of `text` (a request's `request_text::request_text`) that it
    /// does not explain, in order, as far as `Novel` keeps them.
    pub(super) fn novel(&self, text: &str) -> Novel {
        // Each of the answer's literals explains one place it stands in a
        // request, not more: a codebook of literals used again and again
        // is still counted.
        let text = match &self.literals {
            Some(pattern) => {
                let mut used: HashSet<&str> = HashSet::new();
                let mut kept = String::with_capacity(text.len());
                let mut from = 0;
                for found in pattern.find_iter(text) {
                    if used.insert(found.as_str()) {
                        kept.push_str(&text[from..found.start()]);
                        kept.push(' ');
                        from = found.end();
                    }
                }
                kept.push_str(&text[from..]);
                std::borrow::Cow::Owned(kept)
            }
            None => std::borrow::Cow::Borrowed(text),
        };
        let mut novel = Novel::default();
        let mut used: HashMap<&str, usize> = HashMap::new();
        for token in tokens(&text) {
            let times = used.entry(token).or_default();
            *times += 1;
            if *times <= self.allowed.get(token).copied().unwrap_or(0) {
                continue;
            }
            let chars = token.chars().count();
            novel.chars += chars;
            if novel.kept_chars <= (BUDGET_CHARS + CODE_BUDGET_CHARS) * 4 {
                novel.kept_chars += chars;
                novel.tokens.push(token.chars().take(200).collect());
            }
        }
        novel
    }
}

/// A distinctive token, and the forms a simple cipher gives it (reversed,
/// each Caesar shift, rot13 among them): an app that sent one of those in
/// its frame (turn 1's prompt enciphered beside it) has not explained it.
/// Short tokens keep only their own form: a shift of three letters may be
/// a common word.
fn shifted_forms(token: &str) -> Vec<String> {
    let mut forms = vec![token.to_string()];
    if token.chars().filter(char::is_ascii_lowercase).count() < 5 {
        return forms;
    }
    let reversed: String = token.chars().rev().collect();
    for base in [token.to_string(), reversed] {
        for shift in 0..26u8 {
            forms.push(
                base.chars()
                    .map(|c| match c {
                        'a'..='z' => ((c as u8 - b'a' + shift) % 26 + b'a') as char,
                        _ => c,
                    })
                    .collect(),
            );
        }
    }
    forms
}

/// The unexplained tokens of one request, kept up to a few budgets' worth
/// (all that can matter) so that a flooded request costs no memory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Novel {
    /// Characters of all its unexplained tokens.
    pub chars: usize,
    /// Its unexplained tokens in order, while `kept_chars` was within reach.
    pub tokens: Vec<String>,
    kept_chars: usize,
}

/// A code: digits and hex letters, at least one digit (ids, times, numbers).
fn is_code(token: &str) -> bool {
    token.chars().all(|c| c.is_ascii_hexdigit()) && token.chars().any(|c| c.is_ascii_digit())
}

/// The budgets are the run's, not each request's: old turns split over
/// many small requests add up. Each request is charged for what it holds
/// beyond the request before it (honest apps resend their new session id,
/// greeting and message ids with every request), counting repeats, so a
/// codebook sent once buys nothing. Returns, per request, why the run
/// crossed a budget there (and at every request after), or `None`.
pub(super) fn over_budget<'a>(
    novel: impl IntoIterator<Item = Option<&'a Novel>>,
) -> Vec<Option<String>> {
    let mut previous: HashMap<&str, usize> = HashMap::new();
    let (mut words, mut codes) = (0usize, 0usize);
    let mut quoted: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    for request in novel {
        let Some(request) = request else {
            out.push(None);
            continue;
        };
        let mut counts: HashMap<&str, usize> = HashMap::new();
        let mut kept = 0usize;
        for token in &request.tokens {
            kept += token.chars().count();
            let count = counts.entry(token.as_str()).or_default();
            *count += 1;
            if *count > previous.get(token.as_str()).copied().unwrap_or(0) {
                let chars = token.chars().count();
                if is_code(token) {
                    codes += chars;
                } else {
                    words += chars;
                    if quoted.len() < 8 {
                        quoted.push(token);
                    }
                }
            }
        }
        // What was not kept is charged whole, as words.
        words += request.chars.saturating_sub(kept);
        previous = counts;
        let over = words > BUDGET_CHARS || codes > CODE_BUDGET_CHARS;
        out.push(over.then(|| {
            let sample: Vec<String> = quoted
                .iter()
                .map(|t| {
                    let t: String = t.chars().take(24).collect();
                    if t.trim().is_empty() {
                        t.escape_debug().to_string()
                    } else {
                        t
                    }
                })
                .collect();
            format!(
                "{words} characters of words and {codes} of codes (digits, hex), from the reset \
                 on, that are neither in the app's requests before the conversation began nor in \
                 the new turns (e.g. `{}`; at most {BUDGET_CHARS} and {CODE_BUDGET_CHARS} are \
                 allowed), which may be the old turns in disguise",
                sample.join(" ")
            )
        }));
    }
    out
}

/// Runs of letters and digits, and runs of other visible characters, as
/// tokens: a disguise by punctuation (Morse, entities) is counted too; so
/// is one by spacing: a run of spaces that is not one space or one line
/// break (tabs, spaces and tabs as bits) is a token of its own.
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
    let plain_space = |run: &str| matches!(run, " " | "\n" | " \n" | "\n ");
    let mut rest = text;
    std::iter::from_fn(move || loop {
        let first = class(rest.chars().next()?);
        let end = rest
            .char_indices()
            .find(|&(_, c)| class(c) != first)
            .map_or(rest.len(), |(i, _)| i);
        let (token, tail) = rest.split_at(end);
        rest = tail;
        if first != Class::Space || !plain_space(token) {
            return Some(token);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocabulary(turns: &[Turn], frame: &str) -> Vocabulary {
        Vocabulary::new([frame], turns, 2, &[])
    }

    impl Vocabulary {
        fn unexplained(&self, text: &str) -> Option<String> {
            over_budget([Some(&self.novel(text))]).pop().flatten()
        }
    }

    fn request(parts: &[&str]) -> String {
        crate::turns::normalise(&parts.join("\n"))
    }

    #[test]
    fn tokens_split_words_symbols_and_spaces() {
        let found: Vec<&str> = tokens("Hello, wörld!! 42-x\n&#72;\t \tz").collect();
        assert_eq!(
            found,
            ["Hello", ",", "wörld", "!!", "42", "-", "x", "&#", "72", ";", "\t \t", "z"]
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
    fn common_words_stay_in_the_frame_but_the_old_turns_own_do_not() {
        let turns = crate::turns::new_turns();
        // A long system prompt with the words the old turns also use.
        let system = "You are a helpful assistant. Please remember what my users say, \
                      give the code words they name, and be brief. "
            .repeat(12);
        let frame = request(&["model", "llama3", &system, &turns[0].prompt]);
        let v = vocabulary(&turns, &frame);
        let after = request(&["model", "llama3", &system, &turns[2].prompt]);
        assert_eq!(v.unexplained(&after), None);
        let distinctive = crate::turns::distinctive_tokens(&turns[0]);
        assert!(distinctive.len() >= 5, "{distinctive:?}");
        for token in &distinctive {
            assert!(
                !v.allowed.contains_key(token),
                "{token} stayed in the frame"
            );
        }
    }

    #[test]
    fn the_budget_is_the_runs_and_a_repeated_token_counts_once() {
        let turns = crate::turns::new_turns();
        let v = vocabulary(&turns, "model llama3");
        // Both old turns reversed, a few words per request.
        let old = format!(
            "{} {} {} {}",
            turns[0].prompt, turns[0].reply, turns[1].prompt, turns[1].reply
        );
        let reversed: String = crate::turns::normalise(&old).chars().rev().collect();
        let words: Vec<&str> = reversed.split(' ').collect();
        let chunks: Vec<Novel> = words.chunks(5).map(|c| v.novel(&c.join(" "))).collect();
        assert!(chunks.iter().all(|n| n.chars < BUDGET_CHARS));
        let verdicts = over_budget(chunks.iter().map(Some));
        assert!(
            verdicts.last().unwrap().is_some(),
            "split over requests, it passed"
        );
        // A new session id and a greeting in every request count once.
        let honest = v.novel(
            "session 0c8e1b52-4c8b-4a57-9b1e-5d0f3a7c9e21 conversation reset, how can i help?",
        );
        let verdicts = over_budget(std::iter::repeat_n(Some(&honest), 6));
        assert!(verdicts.iter().all(Option::is_none), "{verdicts:?}");
    }

    #[test]
    fn a_system_prompt_the_answer_wrote_is_explained_once_per_request() {
        let turns = crate::turns::new_turns();
        let source = r#"
DEFAULT = ("You are a helpful, respectful and honest assistant. Always answer as "
           "helpfully as possible, while being safe. Your answers should not include "
           "any harmful, unethical, racist, sexist, toxic, dangerous, or illegal content.")
GREETING = f"Hello {name}! The conversation was reset.\nHow can I help you today?"
"#;
        let literals = string_literals(source);
        assert!(
            literals.iter().any(|l| l.contains("respectful and honest")),
            "{literals:?}"
        );
        assert!(
            literals
                .iter()
                .any(|l| l == "! The conversation was reset.\nHow can I help you today?"),
            "{literals:?}"
        );
        let v = Vocabulary::new(["model llama3"], &turns, 2, &literals);
        let prompt = literals[..3].concat();
        let after = request(&[
            &prompt,
            "Hello Ada! The conversation was reset.\nHow can I help you today?",
        ]);
        assert_eq!(v.unexplained(&after), None);
        // Literals as a codebook: each explains one place only.
        let codebook: Vec<String> = ('a'..='z')
            .map(|c| format!("letter {c} of twelve"))
            .collect();
        let v = Vocabulary::new(["model llama3"], &turns, 2, &codebook);
        let encoded: Vec<String> = turns[0]
            .prompt
            .to_lowercase()
            .chars()
            .filter(char::is_ascii_lowercase)
            .map(|c| format!("letter {c} of twelve"))
            .collect();
        assert!(v.unexplained(&encoded.join(" ")).is_some());
    }

    #[test]
    fn numbers_are_codes_with_their_own_budget() {
        let turns = crate::turns::new_turns();
        let v = vocabulary(&turns, "model llama3");
        // A context array and a uuid and a time on each message pass.
        let mut honest: Vec<String> = (9200..9208).map(|n| n.to_string()).collect();
        for _ in 0..5 {
            honest.push(uuid::Uuid::new_v4().to_string());
            honest.push("2026-12-06T18:23:12.123456".into());
        }
        assert_eq!(v.unexplained(&honest.join(" ")), None);
        // The old turns (the first one's prompt and reply, the second's
        // prompt) as character codes, offset into the context's range.
        let old = format!("{} {} {}", turns[0].prompt, turns[0].reply, turns[1].prompt);
        let codes: Vec<String> = old.chars().map(|c| (c as u32 + 9200).to_string()).collect();
        assert!(v.unexplained(&codes.join(",")).is_some());
    }

    #[test]
    fn a_codebook_of_the_frame_or_the_new_turns_is_counted() {
        let turns = crate::turns::new_turns();
        let old = crate::turns::normalise(&format!("{} {}", turns[0].prompt, turns[0].reply));
        let letters: Vec<char> = old.chars().filter(char::is_ascii_lowercase).collect();
        // The NATO alphabet in the system prompt before the first turn, and
        // the old turns spelt out in it after the reset.
        let nato = [
            "alfa", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
            "juliett", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo",
            "sierra", "tango", "uniform", "victor", "whiskey", "xray", "yankee", "zulu",
        ];
        let frame = request(&["model", "llama3", &nato.join(" "), &turns[0].prompt]);
        let v = vocabulary(&turns, &frame);
        let spelt: Vec<&str> = letters
            .iter()
            .map(|&c| nato[(c as u8 - b'a') as usize])
            .collect();
        let after = request(&["model", "llama3", &spelt.join(" "), &turns[2].prompt]);
        assert!(v.unexplained(&after).is_some(), "the NATO codebook passed");
        // The old turns as bits, written with two words of the new prompt.
        let system = "You are a helpful assistant. Answer in one short sentence.";
        let v = vocabulary(
            &turns,
            &request(&["model", "llama3", system, &turns[0].prompt]),
        );
        let (zero, one) = (&turns[2].words[0], &turns[2].words[1]);
        let bits: Vec<&str> = old
            .bytes()
            .flat_map(|b| (0..8).map(move |i| b >> i & 1))
            .map(|bit| {
                if bit == 1 {
                    one.as_str()
                } else {
                    zero.as_str()
                }
            })
            .collect();
        let after = request(&["model", "llama3", &bits.join(" "), &turns[2].prompt]);
        assert!(
            v.unexplained(&after).is_some(),
            "bits in the new words passed"
        );
        // Each frame and new-turn token once more than an honest request
        // holds it still passes: a title request, a template.
        let after = request(&[
            "model",
            "llama3",
            system,
            system,
            &turns[2].prompt,
            &turns[2].prompt,
            &turns[2].reply,
            &turns[3].prompt,
        ]);
        assert_eq!(v.unexplained(&after), None);
    }

    #[test]
    fn a_hyphenated_marker_or_code_word_is_still_found() {
        let turns = crate::turns::new_turns();
        let marker = &turns[0].prompt_marker;
        let word = &turns[0].words[0];
        let cut = format!(
            "say {}-{} and {}-{}",
            &marker[..5],
            &marker[5..],
            &word[..2],
            &word[2..]
        );
        let joined = crate::turns::joined_within_chunks(&cut);
        let found = crate::turns::traces_of(&turns[0], &joined);
        assert_eq!(found.len(), 2, "{joined}: {found:?}");
    }
}
