//! Diffs: whether a text is a unified diff, and where the first one sits
//! in an unfenced answer.

/// A unified diff: `---`/`+++` headers and `@@` hunks, or hunks whose lines
/// nearly all start with `+`, `-` or a space.
pub(super) fn looks_like_diff(text: &str) -> bool {
    let (mut headers, mut minus_header) = (false, false);
    let (mut in_hunk, mut body, mut diffish, mut changes) = (false, 0usize, 0usize, 0usize);
    for line in crate::grading::lines::lines(text) {
        if line.starts_with("@@") {
            in_hunk = true;
            continue;
        }
        if !in_hunk {
            headers |= minus_header && line.starts_with("+++ ");
            minus_header = line.starts_with("--- ");
            continue;
        }
        if line.is_empty() {
            continue;
        }
        body += 1;
        match line.as_bytes()[0] {
            b'+' | b'-' => {
                diffish += 1;
                changes += 1;
            }
            b' ' | b'\\' => diffish += 1,
            _ => {}
        }
    }
    in_hunk && changes > 0 && (headers || diffish * 10 >= body * 9)
}

/// The lines `[start, end)` of the first diff in an unfenced answer.
pub(super) fn find_diff_region(lines: &[&str]) -> Option<(usize, usize)> {
    let hunk = lines.iter().position(|l| l.starts_with("@@"))?;
    // Headers just above the first hunk belong to the diff.
    let mut start = hunk;
    while start > 0 {
        let above = lines[start - 1];
        if above.starts_with("--- ")
            || above.starts_with("+++ ")
            || above.starts_with("diff ")
            || above.starts_with("index ")
        {
            start -= 1;
        } else {
            break;
        }
    }
    let mut end = hunk;
    let mut last_diff_line = hunk;
    let mut changes = 0;
    while end < lines.len() {
        let line = lines[end];
        let diffish = line.is_empty()
            || line.starts_with(['+', '-', ' ', '\\', '@'])
            || line.starts_with("diff ")
            || line.starts_with("index ");
        if !diffish {
            break;
        }
        if !line.is_empty() {
            last_diff_line = end;
        }
        if line.starts_with(['+', '-']) && !line.starts_with("+++ ") && !line.starts_with("--- ") {
            changes += 1;
        }
        end += 1;
    }
    (changes > 0).then_some((start, last_diff_line + 1))
}
