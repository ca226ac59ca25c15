//! Fenced blocks: an answer split into its ``` and ~~~ blocks (with their
//! language tags) and the text outside them.

/// An opening fence: three or more backticks or tildes, and an info string.
pub(super) struct Fence {
    pub(super) marker: u8,
    pub(super) len: usize,
    pub(super) indent: usize,
    pub(super) lang: String,
}

impl Fence {
    pub(super) fn open(line: &str) -> Option<Fence> {
        let trimmed = line.trim_start();
        let marker = *trimmed.as_bytes().first()?;
        if marker != b'`' && marker != b'~' {
            return None;
        }
        let len = trimmed.bytes().take_while(|b| *b == marker).count();
        let info = trimmed[len..].trim();
        // A backtick in the info string means inline code, not a fence.
        if len < 3 || (marker == b'`' && info.contains('`')) {
            return None;
        }
        Some(Fence {
            marker,
            len,
            indent: line.len() - trimmed.len(),
            lang: language_tag(info),
        })
    }

    pub(super) fn closes(&self, line: &str) -> bool {
        let trimmed = line.trim();
        let run = trimmed.bytes().take_while(|b| *b == self.marker).count();
        run >= self.len && run == trimmed.len()
    }
}

/// The language of an info string: `Python title="x"` → `python`,
/// `{.py}` → `py`, `python:app.py` → `python`.
fn language_tag(info: &str) -> String {
    let word = info
        .trim_start_matches(['{', '.'])
        .split(|c: char| c.is_whitespace() || matches!(c, ':' | '{' | '}' | ','))
        .next()
        .unwrap_or("");
    word.to_ascii_lowercase()
}

pub(super) struct Block {
    pub(super) index: usize,
    pub(super) lang: String,
    pub(super) text: String,
    pub(super) lines: usize,
}

impl Block {
    /// `block 2 (python, 250 lines)`, the prefix of every note about it.
    pub(super) fn describe(&self) -> String {
        let lang = if self.lang.is_empty() {
            "no language"
        } else {
            &self.lang
        };
        let plural = if self.lines == 1 { "" } else { "s" };
        format!("block {} ({lang}, {} line{plural})", self.index, self.lines)
    }
}

pub(super) struct FenceScan {
    pub(super) blocks: Vec<Block>,
    /// The answer without its fenced blocks (prose, unfenced code).
    pub(super) outside: String,
    pub(super) notes: Vec<String>,
}

pub(super) fn split_fences(text: &str) -> FenceScan {
    let mut scan = FenceScan {
        blocks: Vec::new(),
        outside: String::new(),
        notes: Vec::new(),
    };
    let mut open: Option<(Fence, Block)> = None;
    for line in crate::grading::lines::split(text) {
        match open.take() {
            Some((fence, block)) if fence.closes(line) => scan.blocks.push(block),
            Some((fence, mut block)) => {
                // Content of an indented fence (in a list) loses that indent.
                let strip = line
                    .bytes()
                    .take(fence.indent)
                    .take_while(|b| *b == b' ')
                    .count();
                block.text.push_str(&line[strip..]);
                block.text.push('\n');
                block.lines += 1;
                open = Some((fence, block));
            }
            None => match Fence::open(line) {
                Some(fence) => {
                    let block = Block {
                        index: scan.blocks.len() + 1,
                        lang: fence.lang.clone(),
                        text: String::new(),
                        lines: 0,
                    };
                    open = Some((fence, block));
                }
                None => {
                    scan.outside.push_str(line);
                    scan.outside.push('\n');
                }
            },
        }
    }
    if let Some((_, mut block)) = open {
        // `split` yields an empty last piece after a final newline.
        if block.text.ends_with("\n\n") || block.text == "\n" {
            block.text.pop();
            block.lines -= 1;
        }
        scan.notes.push(format!(
            "{} has no closing fence: taken to the end of the answer",
            block.describe()
        ));
        scan.blocks.push(block);
    }
    scan
}
