//! A side-by-side line diff of an answer against its task's original, for
//! the verification page: Myers' O(ND) shortest edit script over lines
//! (common ends stripped first), paired into rows (a removed run beside the
//! added run that replaced it), long unchanged runs folded, and the lines
//! the static grader named as unrequested changes flagged. Bounded: past
//! [`MAX_LINES`] a side or [`MAX_EDITS`] edits there is no diff, so a huge
//! or unrelated answer cannot make a page slow.

use std::collections::BTreeMap;

/// Lines a side beyond which no diff is computed.
pub const MAX_LINES: usize = 5_000;
/// Edits (lines removed plus added) beyond which the search stops: its
/// time is O((N+M)·D) and its memory O(D²).
pub const MAX_EDITS: usize = 1_000;
/// Unchanged lines kept on each side of a change; longer runs are folded.
const CONTEXT: usize = 3;

/// One step of the edit script, by 0-based line index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// The same line on both sides: (original, answer).
    Same(usize, usize),
    /// A line of the original only.
    Removed(usize),
    /// A line of the answer only.
    Added(usize),
}

/// Two lines are the same when they differ only in trailing whitespace
/// (invisible in a listing, and no change to Python).
fn same(a: &str, b: &str) -> bool {
    a.trim_end() == b.trim_end()
}

/// The shortest edit script from `a` to `b`, or `None` when it needs more
/// than `max_edits` edits.
pub fn edits(a: &[&str], b: &[&str], max_edits: usize) -> Option<Vec<Op>> {
    let prefix = a.iter().zip(b).take_while(|(x, y)| same(x, y)).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| same(x, y))
        .count();
    let (middle_a, middle_b) = (&a[prefix..a.len() - suffix], &b[prefix..b.len() - suffix]);
    let mut ops: Vec<Op> = (0..prefix).map(|i| Op::Same(i, i)).collect();
    for op in myers(middle_a, middle_b, max_edits)? {
        ops.push(match op {
            Op::Same(i, j) => Op::Same(i + prefix, j + prefix),
            Op::Removed(i) => Op::Removed(i + prefix),
            Op::Added(j) => Op::Added(j + prefix),
        });
    }
    let (tail_a, tail_b) = (a.len() - suffix, b.len() - suffix);
    ops.extend((0..suffix).map(|i| Op::Same(tail_a + i, tail_b + i)));
    Some(ops)
}

/// Myers' greedy forward search, keeping each round's furthest reaches
/// (diagonals -d..=d) to walk the path back.
fn myers(a: &[&str], b: &[&str], max_edits: usize) -> Option<Vec<Op>> {
    let (n, m) = (a.len(), b.len());
    let limit = (n + m).min(max_edits);
    // v[k + offset]: the furthest x reached on diagonal k (y = x - k).
    let offset = limit + 1;
    let mut v = vec![0usize; 2 * limit + 3];
    let mut trace: Vec<Vec<usize>> = Vec::new();
    for d in 0..=limit {
        let d_signed = d as isize;
        let mut done = false;
        for k in (-d_signed..=d_signed).step_by(2) {
            let at = (k + offset as isize) as usize;
            // Down (an addition) from k+1, or right (a removal) from k-1.
            let mut x = if k == -d_signed || (k != d_signed && v[at - 1] < v[at + 1]) {
                v[at + 1]
            } else {
                v[at - 1] + 1
            };
            let mut y = (x as isize - k) as usize;
            while x < n && y < m && same(a[x], b[y]) {
                x += 1;
                y += 1;
            }
            v[at] = x;
            if x >= n && y >= m {
                done = true;
                break;
            }
        }
        trace.push(v[offset - d..=offset + d].to_vec());
        if done {
            return Some(backtrack(&trace, n, m));
        }
    }
    None
}

/// The path found, walked back from the end through each round's reaches.
fn backtrack(trace: &[Vec<usize>], n: usize, m: usize) -> Vec<Op> {
    let (mut x, mut y) = (n, m);
    let mut ops = Vec::with_capacity(n + m);
    for d in (1..trace.len()).rev() {
        let d_signed = d as isize;
        let previous = &trace[d - 1];
        let reach = |k: isize| previous[(k + d_signed - 1) as usize];
        let k = x as isize - y as isize;
        let from = if k == -d_signed || (k != d_signed && reach(k - 1) < reach(k + 1)) {
            k + 1
        } else {
            k - 1
        };
        let from_x = reach(from);
        let from_y = (from_x as isize - from) as usize;
        // The edit leads from (from_x, from_y) to `mid`; the snake from
        // there to (x, y) is unchanged lines.
        let added = from == k + 1;
        let (mid_x, mid_y) = if added {
            (from_x, from_y + 1)
        } else {
            (from_x + 1, from_y)
        };
        while x > mid_x && y > mid_y {
            ops.push(Op::Same(x - 1, y - 1));
            x -= 1;
            y -= 1;
        }
        ops.push(if added {
            Op::Added(from_y)
        } else {
            Op::Removed(from_x)
        });
        (x, y) = (from_x, from_y);
    }
    while x > 0 && y > 0 {
        ops.push(Op::Same(x - 1, y - 1));
        x -= 1;
        y -= 1;
    }
    ops.reverse();
    ops
}

/// A line on one side: its 1-based number and its text.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell<'a> {
    pub number: usize,
    pub text: &'a str,
}

/// What a row shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Same,
    /// A removed line beside the added line in its place.
    Changed,
    Removed,
    Added,
    /// Unchanged lines folded away.
    Folded,
}

impl Kind {
    /// The row's class on the page.
    pub fn class(self) -> &'static str {
        match self {
            Kind::Same => "same",
            Kind::Changed => "changed",
            Kind::Removed => "removed",
            Kind::Added => "added",
            Kind::Folded => "folded",
        }
    }
}

/// One row of the side-by-side view.
#[derive(Debug, Clone, PartialEq)]
pub struct Row<'a> {
    pub kind: Kind,
    pub left: Option<Cell<'a>>,
    pub right: Option<Cell<'a>>,
    /// The unrequested changes named at the answer's line (their kinds).
    pub flag: Option<&'a str>,
    /// For a folded row: how many unchanged lines it stands for.
    pub folded: usize,
}

/// The answer beside its original.
#[derive(Debug, Clone, PartialEq)]
pub struct SideBySide<'a> {
    pub rows: Vec<Row<'a>>,
    pub removed: usize,
    pub added: usize,
}

/// Why there is no diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TooLarge {
    Lines { original: usize, answer: usize },
    Edits,
}

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TooLarge::Lines { original, answer } => write!(
                f,
                "not compared: the original has {original} lines and the answer {answer}, over the diff's limit of {MAX_LINES} a side"
            ),
            TooLarge::Edits => write!(
                f,
                "not compared: the answer differs from the original by more than {MAX_EDITS} lines"
            ),
        }
    }
}

/// The answer beside the original, with the answer's lines in `flagged`
/// (1-based, to the kinds named there) marked.
pub fn side_by_side<'a>(
    original: &'a str,
    answer: &'a str,
    flagged: &'a BTreeMap<usize, String>,
) -> Result<SideBySide<'a>, TooLarge> {
    let a: Vec<&str> = original.lines().collect();
    let b: Vec<&str> = answer.lines().collect();
    if a.len() > MAX_LINES || b.len() > MAX_LINES {
        return Err(TooLarge::Lines {
            original: a.len(),
            answer: b.len(),
        });
    }
    let ops = edits(&a, &b, MAX_EDITS).ok_or(TooLarge::Edits)?;
    let left = |i: usize| Cell {
        number: i + 1,
        text: a[i],
    };
    let right = |j: usize| Cell {
        number: j + 1,
        text: b[j],
    };
    let row = |kind, l: Option<Cell<'a>>, r: Option<Cell<'a>>| Row {
        flag: r
            .as_ref()
            .and_then(|c| flagged.get(&c.number))
            .map(String::as_str),
        kind,
        left: l,
        right: r,
        folded: 0,
    };
    let (mut rows, mut removed, mut added) = (Vec::new(), 0, 0);
    let mut at = 0;
    while at < ops.len() {
        if let Op::Same(i, j) = ops[at] {
            rows.push(row(Kind::Same, Some(left(i)), Some(right(j))));
            at += 1;
            continue;
        }
        // A hunk: its removals paired with its additions, in order.
        let (mut gone, mut new) = (Vec::new(), Vec::new());
        while let Some(op) = ops.get(at).filter(|op| !matches!(op, Op::Same(..))) {
            match *op {
                Op::Removed(i) => gone.push(i),
                Op::Added(j) => new.push(j),
                Op::Same(..) => unreachable!("filtered out"),
            }
            at += 1;
        }
        removed += gone.len();
        added += new.len();
        for n in 0..gone.len().max(new.len()) {
            let (l, r) = (gone.get(n).map(|&i| left(i)), new.get(n).map(|&j| right(j)));
            let kind = match (&l, &r) {
                (Some(_), Some(_)) => Kind::Changed,
                (Some(_), None) => Kind::Removed,
                _ => Kind::Added,
            };
            rows.push(row(kind, l, r));
        }
    }
    Ok(SideBySide {
        rows: fold(rows),
        removed,
        added,
    })
}

/// Unchanged runs reduced to their [`CONTEXT`] next to a change or a
/// flagged line; what is left out becomes one folded row (a single line
/// is kept: a fold of one hides nothing).
fn fold(rows: Vec<Row<'_>>) -> Vec<Row<'_>> {
    let mut keep: Vec<bool> = rows
        .iter()
        .map(|r| r.kind != Kind::Same || r.flag.is_some())
        .collect();
    let anchors: Vec<usize> = (0..rows.len()).filter(|&i| keep[i]).collect();
    for i in anchors {
        let (from, to) = (i.saturating_sub(CONTEXT), (i + CONTEXT).min(rows.len() - 1));
        keep[from..=to].iter_mut().for_each(|k| *k = true);
    }
    let mut out = Vec::new();
    let mut hidden: Vec<Row> = Vec::new();
    for (row, kept) in rows.into_iter().zip(keep) {
        if kept {
            out.extend(folded(std::mem::take(&mut hidden)));
            out.push(row);
        } else {
            hidden.push(row);
        }
    }
    out.extend(folded(hidden));
    out
}

/// Hidden unchanged rows as one folded row, or as themselves when one.
fn folded(hidden: Vec<Row<'_>>) -> Vec<Row<'_>> {
    if hidden.len() < 2 {
        return hidden;
    }
    vec![Row {
        kind: Kind::Folded,
        left: None,
        right: None,
        flag: None,
        folded: hidden.len(),
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Applies an edit script to `a`, checking it against `b` as it goes:
    /// every line of both sides once, in order, same lines equal.
    fn check_script(a: &[&str], b: &[&str], ops: &[Op]) {
        let (mut i, mut j) = (0, 0);
        for op in ops {
            match *op {
                Op::Same(x, y) => {
                    assert_eq!((x, y), (i, j), "{ops:?}");
                    assert!(same(a[x], b[y]));
                    i += 1;
                    j += 1;
                }
                Op::Removed(x) => {
                    assert_eq!(x, i, "{ops:?}");
                    i += 1;
                }
                Op::Added(y) => {
                    assert_eq!(y, j, "{ops:?}");
                    j += 1;
                }
            }
        }
        assert_eq!((i, j), (a.len(), b.len()), "{ops:?}");
    }

    fn edit_count(ops: &[Op]) -> usize {
        ops.iter().filter(|op| !matches!(op, Op::Same(..))).count()
    }

    /// The length of a longest common subsequence, by the textbook table.
    fn lcs(a: &[&str], b: &[&str]) -> usize {
        let mut table = vec![vec![0; b.len() + 1]; a.len() + 1];
        for i in (0..a.len()).rev() {
            for j in (0..b.len()).rev() {
                table[i][j] = if same(a[i], b[j]) {
                    table[i + 1][j + 1] + 1
                } else {
                    table[i + 1][j].max(table[i][j + 1])
                };
            }
        }
        table[0][0]
    }

    #[test]
    fn the_script_is_a_shortest_one() {
        let cases: &[(&str, &str)] = &[
            ("", ""),
            ("a", ""),
            ("", "a\nb"),
            ("a\nb\nc", "a\nb\nc"),
            ("a\nb\nc\na\nb\nb\na", "c\nb\na\nb\na\nc"),
            ("x\ny\nz", "p\nq"),
            ("a\nb\nc\nd", "a\nc\nd\ne"),
            ("def f():\n    pass\n", "def f():  \n    return 1\n"),
        ];
        for (a, b) in cases {
            let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
            let ops = edits(&a, &b, MAX_EDITS).unwrap();
            check_script(&a, &b, &ops);
            assert_eq!(
                edit_count(&ops),
                a.len() + b.len() - 2 * lcs(&a, &b),
                "{a:?} → {b:?}: {ops:?}"
            );
        }
    }

    /// Every pair of short texts over a two-letter alphabet: the script
    /// holds, and is as short as the longest common subsequence allows.
    #[test]
    fn every_small_pair_gets_a_shortest_script() {
        let texts: Vec<Vec<&str>> = (0..64u32)
            .flat_map(|bits| {
                (0..=6).map(move |len| {
                    (0..len)
                        .map(|i| if bits >> i & 1 == 1 { "x" } else { "y" })
                        .collect()
                })
            })
            .collect();
        for a in texts.iter().step_by(7) {
            for b in &texts {
                let ops = edits(a, b, MAX_EDITS).unwrap();
                check_script(a, b, &ops);
                assert_eq!(edit_count(&ops), a.len() + b.len() - 2 * lcs(a, b));
            }
        }
    }

    #[test]
    fn past_the_edit_limit_there_is_no_script() {
        let a: Vec<String> = (0..50).map(|i| format!("a{i}")).collect();
        let b: Vec<String> = (0..50).map(|i| format!("b{i}")).collect();
        let (a, b): (Vec<&str>, Vec<&str>) = (
            a.iter().map(String::as_str).collect(),
            b.iter().map(String::as_str).collect(),
        );
        assert!(edits(&a, &b, 99).is_none());
        assert_eq!(edits(&a, &b, 100).map(|ops| edit_count(&ops)), Some(100));
    }

    #[test]
    fn a_replaced_line_sits_beside_its_replacement_and_a_flagged_line_is_marked() {
        let original = "import sys\nclass W:\n    def a(self):\n        pass\n";
        let answer = "import sys\nimport os\nclass W:\n    def a(self):\n        return 1\n";
        let flagged = BTreeMap::from([(2, "new_import".to_string())]);
        let diff = side_by_side(original, answer, &flagged).unwrap();
        assert_eq!((diff.removed, diff.added), (1, 2));
        let kinds: Vec<Kind> = diff.rows.iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds,
            [
                Kind::Same,
                Kind::Added,
                Kind::Same,
                Kind::Same,
                Kind::Changed
            ]
        );
        let added = &diff.rows[1];
        assert_eq!(added.left, None);
        assert_eq!(
            added.right,
            Some(Cell {
                number: 2,
                text: "import os"
            })
        );
        assert_eq!(added.flag, Some("new_import"));
        let changed = &diff.rows[4];
        assert_eq!(
            changed.left.as_ref().map(|c| (c.number, c.text)),
            Some((4, "        pass"))
        );
        assert_eq!(
            changed.right.as_ref().map(|c| (c.number, c.text)),
            Some((5, "        return 1"))
        );
        assert!(diff.rows.iter().filter(|r| r.flag.is_some()).count() == 1);
    }

    #[test]
    fn long_unchanged_runs_are_folded_but_not_a_flagged_line() {
        let original: String = (1..=40).map(|i| format!("line {i}\n")).collect();
        let answer = original.replace("line 20\n", "line twenty\n");
        let flagged = BTreeMap::from([(35, "widget_moved".to_string())]);
        let diff = side_by_side(&original, &answer, &flagged).unwrap();
        let shown: Vec<String> = diff
            .rows
            .iter()
            .map(|r| match r.kind {
                Kind::Folded => format!("…{}", r.folded),
                _ => r.right.as_ref().unwrap().number.to_string(),
            })
            .collect();
        assert_eq!(
            shown,
            [
                "…16", "17", "18", "19", "20", "21", "22", "23", "…8", "32", "33", "34", "35",
                "36", "37", "38", "…2"
            ]
        );
        // Identical texts: one fold.
        let none = BTreeMap::new();
        let same = side_by_side(&original, &original, &none).unwrap();
        assert_eq!(same.rows.len(), 1);
        assert_eq!((same.rows[0].kind, same.rows[0].folded), (Kind::Folded, 40));
    }

    #[test]
    fn a_huge_or_unrelated_answer_gets_no_diff() {
        let none = BTreeMap::new();
        let huge = "x\n".repeat(MAX_LINES + 1);
        assert_eq!(
            side_by_side("a\n", &huge, &none),
            Err(TooLarge::Lines {
                original: 1,
                answer: MAX_LINES + 1
            })
        );
        let original: String = (0..MAX_EDITS).map(|i| format!("a{i}\n")).collect();
        let other: String = (0..MAX_EDITS).map(|i| format!("b{i}\n")).collect();
        let started = std::time::Instant::now();
        assert_eq!(side_by_side(&original, &other, &none), Err(TooLarge::Edits));
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
}
