//! Splitting text into lines with the `memchr` crate's vectorised search.
//! Answers are tens of kilobytes and extraction and grading split them
//! several times; `str::split('\n')` and its kin search one line at a
//! time with a scalar loop, which was a tenth of static grading.

/// Like `text.split('\n')`: a text ending in `\n` yields an empty last piece.
pub fn split(text: &str) -> impl Iterator<Item = &str> {
    let mut start = 0;
    let mut ends = memchr::memchr_iter(b'\n', text.as_bytes());
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        match ends.next() {
            Some(end) => {
                let piece = &text[start..end];
                start = end + 1;
                Some(piece)
            }
            None => {
                done = true;
                Some(&text[start..])
            }
        }
    })
}

/// Like `text.split_inclusive('\n')`: each line with its `\n`.
pub fn inclusive(text: &str) -> impl Iterator<Item = &str> {
    let mut start = 0;
    let mut ends = memchr::memchr_iter(b'\n', text.as_bytes());
    std::iter::from_fn(move || match ends.next() {
        Some(end) => {
            let piece = &text[start..=end];
            start = end + 1;
            Some(piece)
        }
        None if start < text.len() => {
            let piece = &text[start..];
            start = text.len();
            Some(piece)
        }
        None => None,
    })
}

/// Like `text.lines()`: without the `\n` or `\r\n`, no empty last line.
pub fn lines(text: &str) -> impl Iterator<Item = &str> {
    inclusive(text).map(|line| match line.strip_suffix('\n') {
        Some(line) => line.strip_suffix('\r').unwrap_or(line),
        None => line,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_pieces_as_the_standard_library() {
        let texts = [
            "",
            "\n",
            "\n\n",
            "one",
            "one\n",
            "one\ntwo",
            "one\r\ntwo\r\n",
            "\nlead\n\ntrail\n\n",
            "é\nñ\u{1F600}\n",
            "a\r",
        ];
        for text in texts {
            assert_eq!(
                split(text).collect::<Vec<_>>(),
                text.split('\n').collect::<Vec<_>>(),
                "split {text:?}"
            );
            assert_eq!(
                inclusive(text).collect::<Vec<_>>(),
                text.split_inclusive('\n').collect::<Vec<_>>(),
                "inclusive {text:?}"
            );
            assert_eq!(
                lines(text).collect::<Vec<_>>(),
                text.lines().collect::<Vec<_>>(),
                "lines {text:?}"
            );
        }
    }
}
