//! The conversation a run types into the app, and how the host recognises
//! it again in what the app sent to the model API.
//!
//! Each turn carries a prompt marker and a reply marker of its own, drawn
//! at random for this turn alone (nothing of turn 3's can be derived from
//! turns 1 and 2), a few distinctive words, and a reply mark: a pattern of
//! block-glyph groups the host recognises in the window's pixels whatever
//! the colours (`screen`). Matching is done on text normalised as a
//! person would read it: NFKC, case folded, with format characters (Unicode
//! category Cf: zero-width joiners, word joiners, bidi controls…) and every
//! default-ignorable code point (variation selectors, Hangul fillers, tags)
//! removed (a request's encoded runs are read by `harness::request_text`);
//! a summary of the old turns that keeps their words is caught, one that
//! paraphrases them is not (README, Security model).

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

/// How many turns a run types: two before the reset, two after it (the
/// fourth after the app was left alone with its clock moved forward).
pub const TURN_COUNT: usize = 4;

/// How many of them come before the reset.
pub const TURNS_BEFORE_RESET: usize = 2;

/// The `/api/generate` context numbers the fake server gives turn k
/// (0-based): `CONTEXT_BASE + CONTEXT_STRIDE * k + i`, so a list holding
/// them is that turn's memory.
pub const CONTEXT_BASE: i64 = 9000;
pub const CONTEXT_STRIDE: i64 = 100;

/// One typed-in turn: the prompt and the reply the fake server sends back.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct Turn {
    pub prompt: String,
    pub prompt_marker: String,
    pub reply: String,
    pub reply_marker: String,
    /// Words of this turn's prompt and reply that no other turn uses.
    #[serde(default)]
    pub words: Vec<String>,
    /// The reply mark's groups of full blocks, left to right.
    #[serde(default)]
    pub mark: Vec<u8>,
}

/// The reply marks of turns 1 to 4: groups of U+2588 FULL BLOCK glyphs
/// separated by one no-break space (no line is broken inside a mark). Each
/// is five groups long, and no two share a group sequence, so that a mark
/// is told from another by the widths of its ink runs alone.
pub const REPLY_MARKS: [[u8; 5]; TURN_COUNT] = [
    [3, 1, 1, 2, 1],
    [1, 2, 3, 1, 1],
    [2, 1, 3, 1, 2],
    [1, 3, 1, 2, 2],
];

/// The text of a reply mark.
pub fn mark_text(mark: &[u8]) -> String {
    mark.iter()
        .map(|&n| "\u{2588}".repeat(n as usize))
        .collect::<Vec<_>>()
        .join("\u{00a0}")
}

/// Words to draw from: uncommon, unrelated to chat apps and to each other,
/// so that a request carrying one carries the turn it came from.
const WORDS: &[&str] = &[
    "quokka",
    "marzipan",
    "zeppelin",
    "tamarind",
    "obsidian",
    "kumquat",
    "gondola",
    "narwhal",
    "saffron",
    "tundra",
    "pelican",
    "basalt",
    "juniper",
    "mandolin",
    "origami",
    "falafel",
    "walrus",
    "cobalt",
    "lantern",
    "pistachio",
    "glacier",
    "trombone",
    "meerkat",
    "sequoia",
    "paprika",
    "igloo",
    "flamingo",
    "quartz",
    "hazelnut",
    "sextant",
    "armadillo",
    "tapioca",
    "vermilion",
    "bagpipe",
    "cactus",
    "dolphin",
    "espresso",
    "fjord",
    "gazebo",
    "hibiscus",
    "iguana",
    "jasmine",
    "kayak",
    "lagoon",
    "mongoose",
    "nutmeg",
    "okapi",
    "porcupine",
    "quiche",
    "rhubarb",
    "sardine",
    "toucan",
    "ukulele",
    "vanilla",
    "wombat",
    "yodel",
    "zucchini",
    "anchovy",
    "bonsai",
    "cinnamon",
    "dandelion",
    "emerald",
    "fennel",
    "gargoyle",
    "harpoon",
    "ivory",
    "jackal",
    "kiwano",
    "lobster",
    "mango",
    "nectarine",
    "octopus",
    "parsnip",
    "raccoon",
    "squid",
    "turmeric",
    "umber",
    "velvet",
    "wasabi",
    "xylophone",
    "yak",
    "zinnia",
    "abacus",
    "burrito",
    "chinchilla",
    "dulcimer",
    "eucalyptus",
    "frigate",
];

const NAMES: &[&str] = &[
    "Ada", "Boris", "Chiara", "Dmitri", "Esther", "Farid", "Greta", "Hiroshi", "Ingrid", "Joaquin",
    "Katya", "Lorenzo", "Mirela", "Nikolai", "Olwen", "Priya",
];

/// Random bytes from the OS (UUID v4 is 122 random bits each).
fn random_bytes(count: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(count + 16);
    while bytes.len() < count {
        bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    bytes.truncate(count);
    bytes
}

/// A token of lowercase letters and digits with no fixed part: nothing
/// marks it as the judge's, and it survives case folding and NFKC.
fn random_token(length: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    random_bytes(length)
        .into_iter()
        .map(|b| ALPHABET[b as usize % ALPHABET.len()] as char)
        .collect()
}

/// A prompt's marker: a made-up name of five or six syllables
/// (consonant, vowel; about 31 to 38 random bits), as a person names a
/// pet, a boat or a street. No digits and no fixed length or place in the
/// prompt: an answer looking for a code-like token at the end of the
/// judge's prompts (to behave only then) finds nothing to tell them from
/// a person's.
fn random_name() -> String {
    let bytes = random_bytes(13);
    name_from(&bytes[1..], 5 + bytes[0] as usize % 2)
}

/// A made-up name of `syllables` syllables (consonant, vowel) spelled by
/// `bytes`, two a syllable: lower case, no digits, pronounceable.
pub fn name_from(bytes: &[u8], syllables: usize) -> String {
    const CONSONANTS: &[u8] = b"bdfgklmnprstvz";
    const VOWELS: &[u8] = b"aeiou";
    bytes
        .chunks_exact(2)
        .take(syllables)
        .flat_map(|pair| {
            [
                CONSONANTS[pair[0] as usize % CONSONANTS.len()] as char,
                VOWELS[pair[1] as usize % VOWELS.len()] as char,
            ]
        })
        .collect()
}

/// One of `choices`, at random.
fn one_of<T: Copy>(choices: &[T]) -> T {
    choices[random_bytes(1)[0] as usize % choices.len()]
}

/// Turn `index`'s prompt: one of a few phrasings, the marker (`m`) a name
/// somewhere inside it, never its last word. The turns after the reset
/// ask back for what was said before, in the words a person uses
/// (earlier, before, remember, recall, previous, again): an app
/// that puts the old turns back only when asked for them is asked.
fn prompt_for(index: usize, name: &str, a: &str, b: &str, m: &str) -> String {
    match index {
        0 => one_of(&[
            "I am {name}, of {m}. Keep {a}, {b}.",
            "{name} here, from {m}. Keep {a}, {b}.",
            "I am {name}; {m} says keep {a}, {b}.",
        ]),
        1 => one_of(&[
            "Add {a}, {b} and the town {m} too.",
            "Add {a}, {b}; my cat {m} likes them.",
            "Also {a}, {b}, from {m} lane.",
        ]),
        2 => one_of(&[
            "Earlier, before? {a}, {b}, {m} now.",
            "Remember earlier? {a}, {b} to {m} now.",
            "Before, remember? {a}, {b}; {m} asks.",
        ]),
        _ => one_of(&[
            "Recall again? {a}, {b}, {m} now.",
            "Previous, again? {a}, {b}; {m} waits.",
            "Again, as before? {a}, {b}, {m} now.",
        ]),
    }
    .replace("{name}", name)
    .replace("{a}", a)
    .replace("{b}", b)
    .replace("{m}", m)
}

/// Makes the turns of one run, each with its own random markers and words.
pub fn new_turns() -> Vec<Turn> {
    // Distinct words for every turn, drawn without replacement.
    let mut pool: Vec<&str> = WORDS.to_vec();
    let draw = |pool: &mut Vec<&'static str>| {
        let index = random_bytes(2)
            .iter()
            .fold(0usize, |a, &b| a * 256 + b as usize)
            % pool.len();
        pool.swap_remove(index)
    };
    let name = NAMES[random_bytes(1)[0] as usize % NAMES.len()];
    let mut markers: Vec<String> = Vec::new();
    (0..TURN_COUNT)
        .map(|i| {
            let (a, b, c) = (draw(&mut pool), draw(&mut pool), draw(&mut pool));
            // Distinct, and none inside another (a marker is looked for
            // as a substring).
            let prompt_marker = loop {
                let m = random_name();
                if markers.iter().all(|o| !o.contains(&m) && !m.contains(o.as_str())) {
                    markers.push(m.clone());
                    break m;
                }
            };
            let reply_marker = random_token(12);
            let prompt = prompt_for(i, name, a, b, &prompt_marker);
            let reply = match i {
                0 => format!("Nice to meet you, {name}. I will remember {a}, {b} and {c}: {reply_marker}."),
                1 => format!("You gave me code words earlier. Noted {a}, {b} and {c} as well: {reply_marker}."),
                2 => format!("Two plus two is four. {a}, {b}, {c}: {reply_marker}."),
                _ => format!("Three plus three is six. {a}, {b}, {c}: {reply_marker}."),
            };
            let mark = REPLY_MARKS[i].to_vec();
            Turn {
                prompt,
                reply: format!("{reply} {}", mark_text(&mark)),
                prompt_marker,
                reply_marker,
                words: vec![a.to_string(), b.to_string(), c.to_string()],
                mark,
            }
        })
        .collect()
}

/// Text as a reader takes it: NFKC, lower case, without format characters
/// or any other code point Unicode says is default-ignorable (variation
/// selectors, Hangul fillers, tags …: drawn as nothing, or as the letter
/// beside them).
pub fn normalise(text: &str) -> String {
    text.nfkc()
        .filter(|&c| !is_format_character(c) && !is_default_ignorable(c))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt):
/// code points a renderer shows as nothing when it does not support them,
/// and that change no letter a person reads.
fn is_default_ignorable(c: char) -> bool {
    matches!(c as u32,
        0x00AD | 0x034F | 0x061C | 0x115F..=0x1160 | 0x17B4..=0x17B5 | 0x180B..=0x180F
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x206F | 0x3164 | 0xFE00..=0xFE0F
        | 0xFEFF | 0xFFA0 | 0xFFF0..=0xFFF8 | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A
        | 0xE0000..=0xE0FFF)
}

/// Unicode's general category Cf (format characters: invisible, they do
/// not change what a person or a model reads).
fn is_format_character(c: char) -> bool {
    matches!(c as u32,
        0x00AD | 0x0600..=0x0605 | 0x061C | 0x06DD | 0x070F | 0x0890..=0x0891 | 0x08E2
        | 0x180E | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F
        | 0xFEFF | 0xFFF9..=0xFFFB | 0x110BD | 0x110CD | 0x13430..=0x1343F
        | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F)
}

/// What of `turn` a piece of normalised text carries: its markers, or any
/// of its words. Empty when none.
pub fn traces_of(turn: &Turn, normalised: &str) -> Vec<String> {
    let mut found = Vec::new();
    for marker in [&turn.prompt_marker, &turn.reply_marker] {
        if normalised.contains(marker.as_str()) {
            found.push(marker.clone());
        }
    }
    for word in &turn.words {
        if contains_word(normalised, word) {
            found.push(format!("the word `{word}`"));
        }
    }
    found
}

/// What only this turn holds, normalised: its markers, its code words and
/// the name the first turn gives (the rest of its text is common words).
pub fn distinctive_tokens(turn: &Turn) -> Vec<String> {
    let mut out = vec![turn.prompt_marker.clone(), turn.reply_marker.clone()];
    out.extend(turn.words.iter().map(|w| normalise(w)));
    let prompt = normalise(&turn.prompt);
    out.extend(
        NAMES
            .iter()
            .map(|name| normalise(name))
            .filter(|name| contains_word(&prompt, name)),
    );
    out
}

/// `text` with the punctuation inside each run of non-space characters
/// taken out (`uku-lele`, `i42ykd.hg54q7` read as the words they split), to
/// search besides `text`: a marker or code word cut by hyphens is still it.
pub fn joined_within_chunks(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_alphanumeric() || c.is_whitespace() {
            out.push(c);
        }
    }
    out
}

/// `word` in `text` as a word of its own (not inside a longer word).
fn contains_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_share_no_marker_word_or_mark() {
        let turns = new_turns();
        assert_eq!(turns.len(), TURN_COUNT);
        for (i, a) in turns.iter().enumerate() {
            assert!(a.prompt.contains(&a.prompt_marker) && a.reply.contains(&a.reply_marker));
            assert!(a.reply.ends_with(&mark_text(&a.mark)));
            for b in &turns[i + 1..] {
                assert_ne!(a.prompt_marker, b.prompt_marker);
                assert_ne!(a.mark, b.mark);
                assert!(a.words.iter().all(|w| !b.words.contains(w)));
                // Nothing of a later turn is in an earlier one's text, or back.
                assert!(traces_of(b, &normalise(&(a.prompt.clone() + &a.reply))).is_empty());
            }
        }
        // Two runs draw different markers.
        assert_ne!(turns[0].prompt_marker, new_turns()[0].prompt_marker);
    }

    /// A prompt reads as a person's: its marker a made-up name inside it,
    /// never the last word, no digits; the turns after the reset ask back
    /// for what was said before.
    #[test]
    fn prompts_read_as_a_persons_and_ask_back_after_the_reset() {
        for _ in 0..50 {
            let turns = new_turns();
            for (i, turn) in turns.iter().enumerate() {
                let marker = &turn.prompt_marker;
                assert!((10..=12).contains(&marker.len()), "{marker}");
                assert!(marker.chars().all(|c| c.is_ascii_lowercase()), "{marker}");
                let last = turn
                    .prompt
                    .trim_end_matches('.')
                    .rsplit(' ')
                    .next()
                    .unwrap();
                assert!(!last.contains(marker.as_str()), "{}", turn.prompt);
                assert!(turn.prompt.chars().all(|c| (' '..='~').contains(&c)));
                if i >= TURNS_BEFORE_RESET {
                    let asked = [
                        "earlier", "before", "remember", "recall", "previous", "again",
                    ]
                    .iter()
                    .filter(|w| turn.prompt.to_lowercase().contains(*w))
                    .count();
                    assert!(asked >= 2, "{}", turn.prompt);
                }
            }
        }
    }

    #[test]
    fn markers_are_found_through_case_width_and_invisible_characters() {
        let turn = &new_turns()[0];
        let marker = &turn.prompt_marker;
        let joined: String = marker
            .chars()
            .flat_map(|c| [c, '\u{2060}'])
            .collect::<String>()
            .to_uppercase();
        let fullwidth: String = marker
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    char::from_u32(c as u32 - 0x21 + 0xFF01).unwrap()
                } else {
                    c
                }
            })
            .collect();
        for disguised in [joined, fullwidth, format!("x\u{200b}{marker}\u{00ad}y")] {
            let found = traces_of(turn, &normalise(&disguised));
            assert!(found.contains(marker), "{disguised:?} -> {found:?}");
        }
    }

    #[test]
    fn every_default_ignorable_range_is_removed() {
        let turn = &new_turns()[0];
        let marker = &turn.prompt_marker;
        let word = &turn.words[0];
        // Each range's first and last code point, after every letter.
        let ranges: [(u32, u32); 17] = [
            (0x00AD, 0x00AD),
            (0x034F, 0x034F),
            (0x061C, 0x061C),
            (0x115F, 0x1160),
            (0x17B4, 0x17B5),
            (0x180B, 0x180F),
            (0x200B, 0x200F),
            (0x202A, 0x202E),
            (0x2060, 0x206F),
            (0x3164, 0x3164),
            (0xFE00, 0xFE0F),
            (0xFEFF, 0xFEFF),
            (0xFFA0, 0xFFA0),
            (0xFFF0, 0xFFF8),
            (0x1BCA0, 0x1BCA3),
            (0x1D173, 0x1D17A),
            (0xE0000, 0xE0FFF),
        ];
        for (first, last) in ranges {
            for code in [first, (first + last) / 2, last] {
                let Some(ignorable) = char::from_u32(code) else {
                    continue;
                };
                let hide =
                    |text: &str| -> String { text.chars().flat_map(|c| [c, ignorable]).collect() };
                let text = format!("x {} y {} z", hide(marker), hide(word));
                let found = traces_of(turn, &normalise(&text));
                assert!(
                    found.contains(marker) && found.iter().any(|f| f.contains(word.as_str())),
                    "U+{code:04X}: {found:?}"
                );
                assert!(normalise(&ignorable.to_string()).is_empty(), "U+{code:04X}");
            }
        }
        // Variation selectors after every letter, as an emoji style would.
        let styled: String = marker.chars().flat_map(|c| [c, '\u{fe0f}']).collect();
        assert_eq!(normalise(&styled), *marker);
        // Letters and ordinary spacing stay.
        assert_eq!(normalise("Ab c\u{00e9}"), "ab c\u{00e9}");
    }

    #[test]
    fn a_word_inside_a_longer_word_is_not_a_trace() {
        let mut turn = new_turns().remove(0);
        turn.words = vec!["yak".into()];
        assert!(traces_of(&turn, "kayaking yaks").is_empty());
        assert!(!traces_of(&turn, "a yak, then").is_empty());
    }
}
