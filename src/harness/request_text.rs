//! A recorded request read as text, as a model would read it: every string
//! of its body (keys included), its path and headers percent-decoded, and
//! what runs of encoded bytes in them spell: base64, hex and character
//! codes read across the separators between them, and what those bytes
//! inflate to when they are zlib, gzip or raw deflate data. The images and
//! binary files a request carries are found here too: the judge never gives
//! the app any, so after the reset they can only be something it kept.
//!
//! Everything here is bounded by the size of the recorded request, which
//! the supervisor bounds.

use serde_json::Value;

/// Every string of a request body, keys included, normalised, plus what
/// base64 runs in them decode (or inflate) to: one text to search.
pub fn request_text(body: &Value, raw: &[String]) -> String {
    let mut pieces = Vec::new();
    collect_strings(body, &mut pieces, 0);
    pieces.extend(raw.iter().cloned());
    let mut text = String::new();
    for piece in &pieces {
        text.push_str(&crate::turns::normalise(piece));
        text.push('\n');
        for decoded in base64_runs(piece) {
            text.push_str(&crate::turns::normalise(&decoded));
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
                // A run cut short of a whole quantum still holds the start.
                let bytes = decode_base64_run(run);
                match bytes {
                    Some(bytes) => found.push(RequestImage::Png(bytes)),
                    None => found.push(RequestImage::Other("PNG that is not base64")),
                }
            }
        }
    }
    found
}

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
        // The same as hex or byte codes, whatever separates them (`78, 9c,
        // …`, `["0x78", "0x9c", …]`, `[120, 156, …]`).
        for run in code_runs(piece) {
            let Some(bytes) = run.bytes().filter(|b| std::str::from_utf8(b).is_err()) else {
                continue;
            };
            if run.characters() >= MIN_BINARY_RUN {
                return Some(format!(
                    "it carries {} bytes of binary data as {} (a compressed or encoded file), which the judge never gave the app",
                    bytes.len(),
                    run.kind()
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

/// The texts that base64 runs of 16 or more characters decode to (standard
/// or URL-safe alphabet), where they decode to UTF-8 or inflate to it.
fn base64_runs(text: &str) -> Vec<String> {
    let is_b64 = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '-' | '_' | '=');
    let mut found = Vec::new();
    for run in text.split(|c: char| !is_b64(c)).filter(|r| r.len() >= 16) {
        let Some(bytes) = decode_base64_run(run) else {
            continue;
        };
        match String::from_utf8(bytes) {
            Ok(text) => found.push(text),
            Err(binary) => found.extend(inflated(binary.as_bytes())),
        }
        if found.len() >= 64 {
            break;
        }
    }
    found
}

/// A run of codes, read across the separators between them.
enum CodeRun {
    /// Hex digits (`48656c6c, 6f…`, `0x48 0x65`, `\x48\x65`), as bytes.
    Hex(Vec<u8>),
    /// Decimal numbers (`[72, 101, 108…]`): character codes, or bytes.
    Codes(Vec<u32>),
}

impl CodeRun {
    /// The bytes the run stands for: hex read in pairs, or codes that all
    /// fit a byte.
    fn bytes(&self) -> Option<Vec<u8>> {
        match self {
            CodeRun::Hex(bytes) => Some(bytes.clone()),
            CodeRun::Codes(codes) => codes.iter().map(|&c| u8::try_from(c).ok()).collect(),
        }
    }

    /// What the run spells as text: its bytes as UTF-8, or its codes as
    /// characters.
    fn spelt(&self) -> String {
        match self {
            CodeRun::Hex(bytes) => String::from_utf8_lossy(bytes).into_owned(),
            CodeRun::Codes(codes) => codes.iter().filter_map(|&c| char::from_u32(c)).collect(),
        }
    }

    /// About how many characters of a request the run takes, separators
    /// aside: what `MIN_BINARY_RUN` is measured in.
    fn characters(&self) -> usize {
        match self {
            CodeRun::Hex(bytes) => bytes.len() * 2,
            CodeRun::Codes(codes) => codes.len() * 3,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            CodeRun::Hex(_) => "hex",
            CodeRun::Codes(_) => "byte codes",
        }
    }
}

/// Shortest runs worth reading: shorter ones are ids and numbers.
const MIN_HEX_DIGITS: usize = 16;
const MIN_CODES: usize = 8;

/// How many runs of one text are read, and how many of them inflated.
const MAX_CODE_RUNS: usize = 256;
const MAX_INFLATED_RUNS: usize = 16;

/// The runs of hex digits and of decimal codes in `text`, whatever
/// separates their tokens (spaces, commas, quotes, brackets). A `0x` or
/// `x` before hex digits is taken off (`0x78`, `\x78`).
fn code_runs(text: &str) -> Vec<CodeRun> {
    let mut runs = Vec::new();
    let mut hex = String::new();
    let mut codes: Vec<u32> = Vec::new();
    let flush_hex = |hex: &mut String, runs: &mut Vec<CodeRun>| {
        if hex.len() >= MIN_HEX_DIGITS {
            let bytes = hex
                .as_bytes()
                .chunks_exact(2)
                .filter_map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
                .collect();
            runs.push(CodeRun::Hex(bytes));
        }
        hex.clear();
    };
    let flush_codes = |codes: &mut Vec<u32>, runs: &mut Vec<CodeRun>| {
        if codes.len() >= MIN_CODES {
            runs.push(CodeRun::Codes(std::mem::take(codes)));
        }
        codes.clear();
    };
    for token in super::unexplained::tokens(text) {
        if runs.len() >= MAX_CODE_RUNS {
            return runs;
        }
        if !token.chars().next().is_some_and(char::is_alphanumeric) {
            // A separator: runs go on across it.
            continue;
        }
        let digits = ["0x", "0X", "x", "X"]
            .iter()
            .find_map(|prefix| token.strip_prefix(prefix).filter(|rest| !rest.is_empty()))
            .unwrap_or(token);
        if digits.chars().all(|c| c.is_ascii_hexdigit()) {
            hex.push_str(digits);
        } else {
            flush_hex(&mut hex, &mut runs);
        }
        match token.parse::<u32>() {
            Ok(code) if token.len() <= 7 && token.chars().all(|c| c.is_ascii_digit()) => {
                codes.push(code)
            }
            _ => flush_codes(&mut codes, &mut runs),
        }
    }
    flush_hex(&mut hex, &mut runs);
    flush_codes(&mut codes, &mut runs);
    runs
}

/// What runs of codes in `text` spell, read as hex bytes (`48656c6c, 6f…`)
/// and as character codes (`72, 101, 108…`), and what their bytes inflate
/// to (`list(zlib.compress(history))`): text to search for the old turns,
/// not to charge (an honest app's ids decode to noise).
pub(super) fn decoded_code_runs(text: &str) -> String {
    let mut out = String::new();
    let mut inflations = 0;
    for run in code_runs(text) {
        out.push_str(&crate::turns::normalise(&run.spelt()));
        out.push('\n');
        if inflations < MAX_INFLATED_RUNS {
            if let Some(bytes) = run.bytes().filter(|b| std::str::from_utf8(b).is_err()) {
                inflations += 1;
                if let Some(text) = inflated(&bytes) {
                    out.push_str(&crate::turns::normalise(&text));
                    out.push('\n');
                }
            }
        }
    }
    out
}

/// Most a run's decompressed bytes may be: enough for any conversation a
/// cheat could hide, small enough that a bomb costs nothing.
const MAX_INFLATED_BYTES: u64 = 64 * 1024;

/// What `bytes` inflate to as zlib, gzip or raw deflate data (Python's
/// `zlib.compress`, `gzip.compress`, `zlib.compressobj(wbits=-15)`), the
/// first that gives anything, read up to `MAX_INFLATED_BYTES`; a stream cut
/// short gives what it holds so far. Only UTF-8 text is kept: random bytes
/// inflate, if at all, to noise.
fn inflated(bytes: &[u8]) -> Option<String> {
    use flate2::read::{DeflateDecoder, GzDecoder, ZlibDecoder};
    use std::io::Read;
    let readers: [Box<dyn Read + '_>; 3] = [
        Box::new(ZlibDecoder::new(bytes)),
        Box::new(GzDecoder::new(bytes)),
        Box::new(DeflateDecoder::new(bytes)),
    ];
    readers.into_iter().find_map(|reader| {
        let mut out = Vec::new();
        // An error keeps the bytes read before it, which is what is wanted.
        let _ = reader.take(MAX_INFLATED_BYTES).read_to_end(&mut out);
        (out.len() >= 8).then(|| utf8_prefix(out)).flatten()
    })
}

/// `bytes` as text when they are UTF-8 but perhaps for a character cut at
/// the end; `None` for anything else (noise a random stream inflates to).
fn utf8_prefix(bytes: Vec<u8>) -> Option<String> {
    match String::from_utf8(bytes) {
        Ok(text) => Some(text),
        Err(e) if e.utf8_error().error_len().is_none() => {
            let valid = e.utf8_error().valid_up_to();
            let mut bytes = e.into_bytes();
            bytes.truncate(valid);
            String::from_utf8(bytes).ok()
        }
        Err(_) => None,
    }
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
    fn percent_escapes_and_plus_signs_are_decoded() {
        assert_eq!(percent_decoded("a%20b+c%2Fd%zz%"), "a b c/d%zz%");
        assert_eq!(percent_decoded("%E2%82%AC%FF"), "\u{20ac}\u{fffd}");
    }

    #[test]
    fn a_summary_keeping_the_words_is_caught_and_so_is_base64() {
        use base64::Engine as _;
        let turn = &crate::turns::new_turns()[1];
        let word = &turn.words[0];
        let summary = format!(
            "Earlier the user mentioned {} among other things.",
            word.to_uppercase()
        );
        let body = serde_json::json!({"messages": [{"role": "system", "content": summary}]});
        assert!(!crate::turns::traces_of(turn, &request_text(&body, &[])).is_empty());

        let hidden = base64::engine::general_purpose::STANDARD.encode(turn.prompt.as_bytes());
        let body = serde_json::json!({"options": {"memo": hidden}});
        let found = crate::turns::traces_of(turn, &request_text(&body, &[]));
        assert!(found.contains(&turn.prompt_marker), "{found:?}");
    }

    #[test]
    fn code_runs_are_read_as_hex_and_as_character_codes() {
        let secret = "my name is ada, code words quokka and tundra";
        let hex: Vec<String> = secret
            .as_bytes()
            .chunks(4)
            .map(|c| c.iter().map(|b| format!("{b:02x}")).collect())
            .collect();
        assert!(decoded_code_runs(&hex.join(", ")).contains("quokka"));
        let codes: Vec<String> = secret.chars().map(|c| (c as u32).to_string()).collect();
        assert!(decoded_code_runs(&format!("[{}]", codes.join(", "))).contains("tundra"));
        // Ids and numbers alone are too short to be read.
        let honest = "id 0c8e1b52-4c8b-4a57-9b1e-5d0f3a7c9e21 at 2026-12-06 temperature 0.7";
        assert!(!decoded_code_runs(honest).contains("quokka"));
    }

    /// A turn compressed with zlib, gzip or raw deflate (the standard
    /// library's), written as hex or byte codes with any separators, or as
    /// base64: its marker is found in what the run inflates to.
    #[test]
    fn compressed_turns_are_read_in_hex_byte_codes_and_base64() {
        use base64::Engine as _;
        use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
        use std::io::Write;
        let turn = &crate::turns::new_turns()[0];
        let secret = format!("{}\n{}", turn.prompt, turn.reply);
        let level = flate2::Compression::best();
        let mut zlib = ZlibEncoder::new(Vec::new(), level);
        zlib.write_all(secret.as_bytes()).unwrap();
        let mut gzip = GzEncoder::new(Vec::new(), level);
        gzip.write_all(secret.as_bytes()).unwrap();
        let mut raw = DeflateEncoder::new(Vec::new(), level);
        raw.write_all(secret.as_bytes()).unwrap();
        for compressed in [
            zlib.finish().unwrap(),
            gzip.finish().unwrap(),
            raw.finish().unwrap(),
        ] {
            let hex: Vec<String> = compressed.iter().map(|b| format!("{b:02x}")).collect();
            let prefixed: Vec<String> = hex.iter().map(|h| format!("\"0x{h}\"")).collect();
            let codes: Vec<String> = compressed.iter().map(u8::to_string).collect();
            let escaped: String = hex.iter().map(|h| format!("\\x{h}")).collect();
            for written in [
                hex.join(", "),
                format!("[{}]", prefixed.join(", ")),
                format!("[{}]", codes.join(",")),
                escaped,
            ] {
                let searched = decoded_code_runs(&crate::turns::normalise(&written));
                let found = crate::turns::traces_of(turn, &searched);
                assert!(found.contains(&turn.prompt_marker), "{written}: {found:?}");
            }
            let body = serde_json::json!({
                "memo": base64::engine::general_purpose::STANDARD.encode(&compressed)
            });
            let found = crate::turns::traces_of(turn, &request_text(&body, &[]));
            assert!(found.contains(&turn.reply_marker), "{found:?}");
        }
    }

    /// Binary data of a file's size is found as hex or byte codes whatever
    /// separates them; ids, hashes and numbers are not binary.
    #[test]
    fn binary_data_as_hex_or_byte_codes_is_found_across_separators() {
        let noise: Vec<u8> = (0..160u32).map(|i| (i * 197 % 251) as u8 | 0x80).collect();
        let hex: Vec<String> = noise.iter().map(|b| format!("{b:02x}")).collect();
        let codes: Vec<String> = noise.iter().map(u8::to_string).collect();
        for (written, kind) in [
            (hex.join(", "), "160 bytes of binary data as hex"),
            (format!("{:?}", hex), "as hex"),
            // Decimal digits are hex digits too: either reading finds it.
            (format!("[{}]", codes.join(", ")), "bytes of binary data as"),
        ] {
            let body = serde_json::json!({"messages": [{"content": written}]});
            let why = carried_binary(&body, &[]).unwrap_or_default();
            assert!(why.contains(kind), "{why:?}");
        }
        let as_codes = code_runs(&codes.join(", "));
        assert!(as_codes
            .iter()
            .any(|run| run.kind() == "byte codes" && run.bytes() == Some(noise.clone())));
        let honest = serde_json::json!({
            "session": "0c8e1b52-4c8b-4a57-9b1e-5d0f3a7c9e21",
            "ids": ["5d0f3a7c-9e21-4a57-9b1e-0c8e1b524c8b", "9b1e5d0f-3a7c-4a57-0c8e-1b524c8b9e21"],
            "digest": "ab".repeat(64),
            "context": (9000..9300).collect::<Vec<i64>>(),
            "options": {"temperature": 0.7, "seed": 42, "num_ctx": 4096},
        });
        assert_eq!(carried_binary(&honest, &[]), None);
    }
}
