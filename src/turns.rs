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
//! removed, and inside base64 runs too; images a request carries are read
//! for the reply marks like the screen (`screen::marks_in`); a summary of the old turns that keeps their
//! words is caught, one that paraphrases them is not (README, Security
//! model).

use serde::{Deserialize, Serialize};
use serde_json::Value;
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
    (0..TURN_COUNT)
        .map(|i| {
            let (a, b, c) = (draw(&mut pool), draw(&mut pool), draw(&mut pool));
            let prompt_marker = random_token(12);
            let reply_marker = random_token(12);
            let (prompt, reply) = match i {
                0 => (
                    format!("Hello! My name is {name}. Please remember the code words {a} and {b}: {prompt_marker}."),
                    format!("Nice to meet you, {name}. I will remember {a}, {b} and {c}: {reply_marker}."),
                ),
                1 => (
                    format!("Which code words did I give you? Here are two more, {a} and {b}: {prompt_marker}."),
                    format!("You gave me code words earlier. Noted {a}, {b} and {c} as well: {reply_marker}."),
                ),
                2 => (
                    format!("Let us start over. What is two plus two? Say {a} and {b}: {prompt_marker}."),
                    format!("Two plus two is four. {a}, {b}, {c}: {reply_marker}."),
                ),
                _ => (
                    format!("And what is three plus three? Say {a} and {b}: {prompt_marker}."),
                    format!("Three plus three is six. {a}, {b}, {c}: {reply_marker}."),
                ),
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

/// Every string of a request body, keys included, normalised, plus what
/// base64 runs in them decode to: one text to search.
pub fn request_text(body: &Value, raw: &[String]) -> String {
    let mut pieces = Vec::new();
    collect_strings(body, &mut pieces, 0);
    pieces.extend(raw.iter().cloned());
    let mut text = String::new();
    for piece in &pieces {
        text.push_str(&normalise(piece));
        text.push('\n');
        for decoded in base64_runs(piece) {
            text.push_str(&normalise(&decoded));
            text.push('\n');
        }
    }
    text
}

fn collect_strings(value: &Value, out: &mut Vec<String>, depth: usize) {
    // The recorded body is bounded by the supervisor; the depth is bounded here.
    if depth > 64 {
        return;
    }
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items
            .iter()
            .for_each(|v| collect_strings(v, out, depth + 1)),
        Value::Object(map) => {
            for (key, v) in map {
                out.push(key.clone());
                collect_strings(v, out, depth + 1);
            }
        }
        Value::Number(n) => out.push(n.to_string()),
        _ => {}
    }
}

/// `text` with `%XX` escapes decoded (and `+` read as a space, as in a
/// query string), bytes that are not UTF-8 replaced: what a URL or a
/// header carries as it is read.
pub fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// How many images of one request the host decodes, and how large each
/// may be once decoded from base64.
pub const MAX_REQUEST_IMAGES: usize = 8;
pub const MAX_REQUEST_IMAGE_BYTES: usize = 16 * 1024 * 1024;

/// An image a request carries as base64 (an `images` array, a `data:` URL,
/// any string): its bytes, or the kind of image when the host does not
/// decode that kind (only PNG is decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestImage {
    Png(Vec<u8>),
    Other(&'static str),
    /// Past MAX_REQUEST_IMAGES or MAX_REQUEST_IMAGE_BYTES.
    TooMany,
}

/// The images in a request body's strings (keys included) and in `raw`:
/// every place a base64 image starts (PNG, JPEG, GIF, WebP signatures as
/// base64), line breaks inside the base64 skipped.
pub fn request_images(body: &Value, raw: &[String]) -> Vec<RequestImage> {
    use base64::Engine as _;
    // The signatures' base64 (standard and URL-safe alphabets).
    const STARTS: [(&str, &str); 6] = [
        ("iVBORw0KGgo", "PNG"),
        ("/9j/", "JPEG"),
        ("_9j_", "JPEG"),
        ("R0lGODdh", "GIF"),
        ("R0lGODlh", "GIF"),
        ("UklGR", "WebP"),
    ];
    let mut pieces = Vec::new();
    collect_strings(body, &mut pieces, 0);
    pieces.extend(raw.iter().cloned());
    let is_b64 = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '-' | '_' | '=');
    let mut found = Vec::new();
    for piece in &pieces {
        if !STARTS.iter().any(|(start, _)| piece.contains(start)) {
            continue;
        }
        // MIME base64 breaks its lines; JSON may escape its slashes.
        let joined: String = piece
            .chars()
            .filter(|c| !c.is_ascii_whitespace() && *c != '\\')
            .collect();
        for (start, kind) in STARTS {
            for (at, _) in joined.match_indices(start) {
                if found.len() >= MAX_REQUEST_IMAGES {
                    found.push(RequestImage::TooMany);
                    return found;
                }
                if kind != "PNG" {
                    // WebP's RIFF is common text-wise; ask for its WEBP tag.
                    if kind == "WebP"
                        && !joined[at..]
                            .chars()
                            .take(16)
                            .collect::<String>()
                            .contains("V0VCU")
                    {
                        continue;
                    }
                    found.push(RequestImage::Other(kind));
                    continue;
                }
                let run: &str = joined[at..]
                    .split(|c: char| !is_b64(c))
                    .next()
                    .unwrap_or_default();
                if run.len() / 4 * 3 > MAX_REQUEST_IMAGE_BYTES {
                    found.push(RequestImage::TooMany);
                    continue;
                }
                let trimmed = run.trim_end_matches('=');
                let usable = if trimmed.len() % 4 == 1 {
                    &trimmed[..trimmed.len() - 1]
                } else {
                    trimmed
                };
                let bytes = [
                    &base64::engine::general_purpose::STANDARD_NO_PAD,
                    &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                ]
                .iter()
                .find_map(|engine| engine.decode(usable).ok());
                // A run cut short of a whole quantum still holds the start.
                let bytes = bytes.or_else(|| {
                    let whole = &usable[..usable.len() / 4 * 4];
                    base64::engine::general_purpose::STANDARD_NO_PAD
                        .decode(whole)
                        .ok()
                });
                match bytes {
                    Some(bytes) => found.push(RequestImage::Png(bytes)),
                    None => found.push(RequestImage::Other("PNG that is not base64")),
                }
            }
        }
    }
    found
}

/// The texts that base64 runs of 16 or more characters decode to (standard
/// or URL-safe alphabet), where they decode to UTF-8.
/// Shortest base64 run taken for a file: longer than any hash or id an
/// app sends (a SHA-512 in hex is 128), far shorter than any image.
const MIN_BINARY_RUN: usize = 256;

/// Whether a request carries binary data as base64 (an image of any
/// format, a compressed or encoded file), and how much: the judge never
/// gives the app such data, so after the reset it can only be something
/// the app kept, which the host cannot read as text (fail closed).
pub fn carried_binary(body: &Value, raw: &[String]) -> Option<String> {
    let mut pieces = Vec::new();
    collect_strings(body, &mut pieces, 0);
    pieces.extend(raw.iter().cloned());
    let is_b64 = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '-' | '_' | '=');
    for piece in &pieces {
        // MIME base64 breaks its lines; JSON may escape its slashes.
        let joined: String = piece
            .chars()
            .filter(|c| !c.is_ascii_whitespace() && *c != '\\')
            .collect();
        for run in joined
            .split(|c: char| !is_b64(c))
            .filter(|r| r.len() >= MIN_BINARY_RUN)
        {
            if let Some(bytes) = decode_base64_run(run).filter(|b| std::str::from_utf8(b).is_err())
            {
                return Some(format!(
                    "it carries {} bytes of binary data as base64 (an image or a file), which the judge never gave the app",
                    bytes.len()
                ));
            }
        }
    }
    None
}

/// A run of base64 characters decoded, standard or URL-safe, padded or
/// not. Bits past the last whole byte are ignored, not refused: a run cut
/// at any length (or text that merely uses base64's letters, as hex does)
/// is still read.
fn decode_base64_run(run: &str) -> Option<Vec<u8>> {
    use base64::engine::{GeneralPurpose, GeneralPurposeConfig};
    use base64::Engine as _;
    static ENGINES: std::sync::OnceLock<[GeneralPurpose; 2]> = std::sync::OnceLock::new();
    let engines = ENGINES.get_or_init(|| {
        let config = GeneralPurposeConfig::new()
            .with_encode_padding(false)
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone)
            .with_decode_allow_trailing_bits(true);
        [
            GeneralPurpose::new(&base64::alphabet::STANDARD, config),
            GeneralPurpose::new(&base64::alphabet::URL_SAFE, config),
        ]
    });
    let trimmed = run.trim_end_matches('=');
    // A length of 4n + 1 is never base64: a run cut short by one.
    let usable = &trimmed[..trimmed.len() - usize::from(trimmed.len() % 4 == 1)];
    engines.iter().find_map(|engine| engine.decode(usable).ok())
}

fn base64_runs(text: &str) -> Vec<String> {
    let is_b64 = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '-' | '_' | '=');
    let mut found = Vec::new();
    for run in text.split(|c: char| !is_b64(c)).filter(|r| r.len() >= 16) {
        if let Some(decoded) = decode_base64_run(run).and_then(|b| String::from_utf8(b).ok()) {
            found.push(decoded);
        }
        if found.len() >= 64 {
            break;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Any image or file as base64 is found, whatever its format; text as
    /// base64, hashes and ids are not.
    #[test]
    fn binary_data_as_base64_is_found_in_any_format() {
        use base64::Engine as _;
        let encode = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        let mut bmp = b"BM".to_vec();
        bmp.extend((0..600u32).map(|i| (i * 7 % 256) as u8));
        let body = serde_json::json!({"messages": [{"role": "user", "content": "hi", "images": [encode(&bmp)]}]});
        assert!(carried_binary(&body, &[]).is_some_and(|why| why.contains("602 bytes")));
        let header = format!("X-Context: {}", encode(&bmp));
        assert!(carried_binary(&serde_json::json!({}), &[header]).is_some());
        let text = encode(
            "the earlier conversation, word for word "
                .repeat(20)
                .as_bytes(),
        );
        let sha512 = "ab".repeat(64);
        let quiet =
            serde_json::json!({"messages": [{"role": "user", "content": text}], "id": sha512});
        assert_eq!(carried_binary(&quiet, &[]), None);
        // Compressed text as hex, spaced: base64's letters, a length that
        // leaves bits past the last byte (a strict decoder refuses it).
        let spaced_hex = "9f3e ".repeat(64) + "f7";
        let hex = serde_json::json!({"messages": [{"content": spaced_hex}]});
        assert!(carried_binary(&hex, &[]).is_some());
    }

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
    fn a_summary_keeping_the_words_is_caught_and_so_is_base64() {
        use base64::Engine as _;
        let turn = &new_turns()[1];
        let word = &turn.words[0];
        let summary = format!(
            "Earlier the user mentioned {} among other things.",
            word.to_uppercase()
        );
        let body = serde_json::json!({"messages": [{"role": "system", "content": summary}]});
        assert!(!traces_of(turn, &request_text(&body, &[])).is_empty());

        let hidden = base64::engine::general_purpose::STANDARD.encode(turn.prompt.as_bytes());
        let body = serde_json::json!({"options": {"memo": hidden}});
        let found = traces_of(turn, &request_text(&body, &[]));
        assert!(found.contains(&turn.prompt_marker), "{found:?}");
    }

    #[test]
    fn percent_escapes_and_plus_signs_are_decoded() {
        assert_eq!(percent_decoded("a%20b+c%2Fd%zz%"), "a b c/d%zz%");
        assert_eq!(percent_decoded("%E2%82%AC%FF"), "\u{20ac}\u{fffd}");
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
