//! The screen plane, from pixels read outside the candidate's process.
//!
//! The app runs on Qt's `vnc` platform; the supervisor (another process,
//! another uid) reads the framebuffer over RFB at moments it chooses and
//! sends the frames here as zlib-compressed BGRX. Every reply of the fake
//! server ends in its turn's reply mark (`turns::REPLY_MARKS`): groups of
//! full-block glyphs, which render as solid runs of the text's colour
//! separated by runs of the background's. A mark is recognised by the
//! ratios of those runs' widths alone, whatever the two colours are, so
//! grey text, coloured text, a dark theme or placeholder text are seen as a
//! person would see them. Nothing here decides a tier: `harness::judge`
//! reads which turns' marks each frame shows.

use std::io::Read;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::grading::pixels::Rgb;
use crate::turns::{REPLY_MARKS, TURN_COUNT};

/// The largest frame decoded: the screen a job asks for is 1000x700; a
/// larger one is not ours and is refused (`screen_unreadable`).
pub const MAX_FRAME_PIXELS: usize = 2048 * 2048;
/// The largest compressed frame accepted.
const MAX_COMPRESSED_BYTES: usize = 16 << 20;
/// Colours closer than this (largest channel difference) are one colour:
/// a glyph's solid interior varies by a few levels at most.
const SAME_COLOUR: i32 = 10;
/// Ink and background must differ at least this much for a mark to count
/// as visible (near-invisible text is not on screen for a person either).
const MIN_CONTRAST: i32 = 24;
/// Anti-aliased edge pixels between two runs.
const MAX_EDGE: usize = 2;
/// Rows a mark must be found on at one place: a glyph line is 10+ px tall,
/// a chance match of one row is not a mark.
const MIN_ROWS: usize = 3;
/// Rows of a place that may be missing between two where the mark is
/// found: text striped with lines of the background's colour (scan lines)
/// still reads as text to a person.
const MAX_ROW_GAP: usize = 2;

/// One frame of the app's screen, as the supervisor read it.
#[derive(Debug, Clone)]
pub struct Frame {
    /// `checkpoint:before_reset`, `reply:3`, `checkpoint:final`, ….
    pub name: String,
    /// When it was taken, in ms after the job arrived (supervisor's clock).
    pub at_ms: f64,
    pub image: Rgb,
    /// [`Frame::marks`], read once: a scenario asks it of the same frame
    /// for each of its screen expectations.
    marks: std::sync::OnceLock<[bool; TURN_COUNT]>,
}

/// Why a frame was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("a frame record is malformed: {0}")]
    Malformed(&'static str),
    #[error("the screen is {width}x{height} pixels, more than the {MAX_FRAME_PIXELS} read")]
    TooLarge { width: usize, height: usize },
    #[error("a frame's pixels do not decompress to its {width}x{height} size")]
    WrongSize { width: usize, height: usize },
}

impl Frame {
    /// Decodes one record of the supervisor's `frames`: bounded in size
    /// before anything is allocated, never a panic.
    pub fn decode(record: &Value) -> Result<Frame, FrameError> {
        use base64::Engine as _;
        let name = record["name"]
            .as_str()
            .filter(|n| n.len() <= 64 && n.chars().all(|c| c.is_ascii_graphic()))
            .ok_or(FrameError::Malformed("no name"))?;
        let at_ms = record["at_ms"]
            .as_f64()
            .filter(|t| t.is_finite())
            .ok_or(FrameError::Malformed("no time"))?;
        let dimension = |key: &str| {
            record[key]
                .as_u64()
                .filter(|&n| n > 0 && n <= 1 << 16)
                .map(|n| n as usize)
                .ok_or(FrameError::Malformed("no size"))
        };
        let (width, height) = (dimension("width")?, dimension("height")?);
        if width * height > MAX_FRAME_PIXELS {
            return Err(FrameError::TooLarge { width, height });
        }
        let encoded = record["bgrx_zlib"]
            .as_str()
            .filter(|s| s.len() <= MAX_COMPRESSED_BYTES / 3 * 4 + 4)
            .ok_or(FrameError::Malformed("no pixels"))?;
        let compressed = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| FrameError::Malformed("pixels are not base64"))?;
        let expected = width * height * 4;
        let mut bgrx = Vec::with_capacity(expected);
        flate2::read::ZlibDecoder::new(compressed.as_slice())
            .take(expected as u64 + 1)
            .read_to_end(&mut bgrx)
            .map_err(|_| FrameError::WrongSize { width, height })?;
        if bgrx.len() != expected {
            return Err(FrameError::WrongSize { width, height });
        }
        let pixels = bgrx.chunks_exact(4).map(|p| [p[2], p[1], p[0]]).collect();
        Ok(Frame {
            name: name.to_string(),
            at_ms,
            image: Rgb {
                width,
                height,
                pixels,
            },
            marks: Default::default(),
        })
    }

    /// Which turns' reply marks this frame shows (index 0 is turn 1).
    pub fn marks(&self) -> [bool; TURN_COUNT] {
        *self.marks.get_or_init(|| marks_in(&self.image))
    }
}

/// What the host read from the frames, for the report.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
pub struct ScreenCheck {
    /// Frames read from outside the app's process.
    pub frames: usize,
    /// Turns (1-based) whose reply marks were on screen before the reset.
    pub before: Vec<usize>,
    /// Frames after the reset that still showed turn 1 or 2, as
    /// `frame: turn N`.
    pub old_after: Vec<String>,
    /// Turns after the reset (3, 4) whose reply marks were on screen.
    pub after: Vec<usize>,
    /// Why the pixels could not be read, when they could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
}

/// A run of one colour along a row.
#[derive(Debug, Clone, Copy)]
struct Run {
    colour: [u8; 3],
    start: usize,
    len: usize,
}

fn distance(a: [u8; 3], b: [u8; 3]) -> i32 {
    (0..3)
        .map(|i| (a[i] as i32 - b[i] as i32).abs())
        .max()
        .unwrap_or(0)
}

/// A row as runs of one colour each (within `SAME_COLOUR` of the run's
/// first pixel).
fn runs(row: &[[u8; 3]]) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    for (x, &pixel) in row.iter().enumerate() {
        match runs.last_mut() {
            Some(run) if distance(run.colour, pixel) <= SAME_COLOUR => run.len += 1,
            _ => runs.push(Run {
                colour: pixel,
                start: x,
                len: 1,
            }),
        }
    }
    runs
}

/// The row with every one-pixel interruption between two pixels of one
/// colour filled with that colour: ink striped with thin columns of
/// another colour still reads as solid to a person. `None` when there is
/// none (the row reads the same either way).
fn closed(row: &[[u8; 3]]) -> Option<Vec<[u8; 3]>> {
    let mut out = row.to_vec();
    let mut changed = false;
    for x in 1..row.len().saturating_sub(1) {
        let (before, pixel, after) = (row[x - 1], row[x], row[x + 1]);
        if distance(before, after) <= SAME_COLOUR && distance(before, pixel) > SAME_COLOUR {
            out[x] = before;
            changed = true;
        }
    }
    changed.then_some(out)
}

/// A group of ink along a row: where it starts and how wide it is, its
/// anti-aliased edges shared half and half with the gaps beside it.
#[derive(Debug, Clone, Copy)]
struct Group {
    start: f64,
    width: f64,
}

/// The edge pixels from run `from` on (forward): runs of at most
/// `MAX_EDGE` pixels in all, none of the ink's colour. Returns (count of
/// runs, pixels).
fn edge_after(runs: &[Run], from: usize, ink: [u8; 3]) -> (usize, usize) {
    let (mut count, mut pixels) = (0, 0);
    while let Some(run) = runs.get(from + count) {
        if pixels + run.len > MAX_EDGE || distance(run.colour, ink) <= SAME_COLOUR {
            break;
        }
        pixels += run.len;
        count += 1;
    }
    (count, pixels)
}

/// Where the ink that ends before run `from` really ends: the seams
/// between adjacent blocks (a lighter column where two glyphs meet, nearer
/// the ink's colour than the gap's) are part of the group. Returns the run
/// to go on from and the column after the ink.
fn absorb_seams(
    runs: &[Run],
    mut from: usize,
    ink: [u8; 3],
    mut ink_end: usize,
    gap: Option<[u8; 3]>,
) -> (usize, usize) {
    // The gap's colour, if not known yet: the next wide run unlike the ink.
    let gap = gap.or_else(|| {
        runs[from.min(runs.len())..]
            .iter()
            .take(8)
            .find(|r| r.len > MAX_EDGE && distance(r.colour, ink) >= MIN_CONTRAST)
            .map(|r| r.colour)
    });
    while let (Some(seam), Some(after)) = (runs.get(from), runs.get(from + 1)) {
        let nearer_ink = match gap {
            Some(gap) => distance(seam.colour, ink) < distance(seam.colour, gap),
            None => distance(seam.colour, ink) < 2 * MIN_CONTRAST,
        };
        if seam.len > MAX_EDGE || !nearer_ink || distance(after.colour, ink) > SAME_COLOUR {
            break;
        }
        ink_end = after.start + after.len;
        from += 2;
    }
    (from, ink_end)
}

/// The sequences of ink groups along a row: runs of one ink colour
/// separated by gaps of one other colour, each at least five groups long.
fn group_sequences(runs: &[Run]) -> Vec<Vec<Group>> {
    let mut sequences = Vec::new();
    let mut i = 0;
    while i < runs.len() {
        let ink = runs[i];
        if ink.len < 2 {
            i += 1;
            continue;
        }
        let lead_edge = match i.checked_sub(1).map(|p| runs[p]) {
            Some(p) if p.len <= MAX_EDGE && distance(p.colour, ink.colour) > SAME_COLOUR => {
                p.len as f64 / 2.0
            }
            _ => 0.0,
        };
        let mut groups = Vec::new();
        let mut start = ink.start as f64 - lead_edge;
        let mut gap_colour: Option<[u8; 3]> = None;
        let (mut j, mut ink_end) = absorb_seams(runs, i + 1, ink.colour, ink.start + ink.len, None);
        loop {
            let (edge_runs, edge) = edge_after(runs, j, ink.colour);
            let end = ink_end as f64 + edge as f64 / 2.0;
            groups.push(Group {
                start,
                width: end - start,
            });
            let k = j + edge_runs;
            let Some(gap) = runs.get(k) else { break };
            let gap_fits = distance(gap.colour, ink.colour) >= MIN_CONTRAST
                && gap_colour.is_none_or(|c| distance(c, gap.colour) <= SAME_COLOUR);
            if !gap_fits {
                break;
            }
            let (next_edge_runs, next_edge) = edge_after(runs, k + 1, ink.colour);
            let m = k + 1 + next_edge_runs;
            let Some(next) = runs.get(m) else { break };
            if next.len < 2 || distance(next.colour, ink.colour) > SAME_COLOUR {
                break;
            }
            gap_colour.get_or_insert(gap.colour);
            start = next.start as f64 - next_edge as f64 / 2.0;
            (j, ink_end) = absorb_seams(runs, m + 1, ink.colour, next.start + next.len, gap_colour);
        }
        if groups.len() >= 5 {
            sequences.push(groups);
        }
        // The next start may be the gap colour taken as ink (light marks on
        // dark): every run is tried as ink once.
        i += 1;
    }
    sequences
}

/// Whether `groups` hold `mark`'s group sizes somewhere, read either way
/// (mirrored text is still read by a person; no mark is another's
/// mirror), and where (the column of its first group).
fn find_mark(groups: &[Group], mark: &[u8]) -> Option<usize> {
    let mirrored: Vec<u8> = mark.iter().rev().copied().collect();
    find_mark_as_written(groups, mark).or_else(|| find_mark_as_written(groups, &mirrored))
}

fn find_mark_as_written(groups: &[Group], mark: &[u8]) -> Option<usize> {
    let blocks: f64 = mark.iter().map(|&n| n as f64).sum();
    groups.windows(mark.len()).find_map(|window| {
        let unit = window.iter().map(|g| g.width).sum::<f64>() / blocks;
        if unit < 3.0 {
            return None; // too small to be glyphs a person reads
        }
        let tolerance = (unit * 0.2).max(1.2);
        let fits = window
            .iter()
            .zip(mark)
            .all(|(g, &n)| (g.width - n as f64 * unit).abs() <= tolerance);
        // The gaps between groups are one space each: alike, and narrower
        // than a block.
        let gaps: Vec<f64> = window
            .windows(2)
            .map(|p| p[1].start - (p[0].start + p[0].width))
            .collect();
        let low = gaps.iter().copied().fold(f64::INFINITY, f64::min);
        let high = gaps.iter().copied().fold(0.0, f64::max);
        let gaps_fit = low >= 1.0 && high - low <= 2.0 && high < unit * 1.2;
        (fits && gaps_fit).then_some(window[0].start.max(0.0) as usize)
    })
}

/// Which turns' reply marks `image` shows: along its rows, and along its
/// columns for text turned a quarter either way (90° or 270°: a column is
/// then a line read one way or the other, and marks are read mirrored
/// too). One line's buffer at a time: the memory is a column's, the time
/// twice a row scan's at most.
pub fn marks_in(image: &Rgb) -> [bool; TURN_COUNT] {
    let (width, height) = (image.width, image.height);
    let mut seen = marks_along(height, |y, line| {
        line.extend_from_slice(&image.pixels[y * width..(y + 1) * width])
    });
    if seen.iter().all(|&s| s) {
        return seen;
    }
    let turned = marks_along(width, |x, line| {
        line.extend((0..height).map(|y| image.pixels[y * width + x]))
    });
    for (s, t) in seen.iter_mut().zip(turned) {
        *s |= t;
    }
    seen
}

/// Which turns' reply marks show along `count` parallel lines of pixels,
/// each written into the buffer by `line` in turn.
fn marks_along(count: usize, line: impl Fn(usize, &mut Vec<[u8; 3]>)) -> [bool; TURN_COUNT] {
    // Per turn, the (x, rows) places a mark was found at.
    let mut places: [Vec<(usize, usize, usize)>; TURN_COUNT] = Default::default();
    let mut buffer = Vec::new();
    for y in 0..count {
        buffer.clear();
        line(y, &mut buffer);
        let row = buffer.as_slice();
        let row_runs = runs(row);
        if row_runs.len() < 9 {
            continue;
        }
        let closed_runs = closed(row).map(|row| runs(&row));
        let mut found_on_row = [None; TURN_COUNT];
        for each_runs in std::iter::once(&row_runs).chain(closed_runs.as_ref()) {
            for groups in group_sequences(each_runs) {
                for (turn, mark) in REPLY_MARKS.iter().enumerate() {
                    if found_on_row[turn].is_none() {
                        found_on_row[turn] = find_mark(&groups, mark);
                    }
                }
            }
        }
        for (turn, x) in found_on_row.into_iter().enumerate() {
            let Some(x) = x else { continue };
            // The same place a few rows above at most: one more row.
            match places[turn]
                .iter_mut()
                .find(|(px, _, last)| px.abs_diff(x) <= 2 && y - *last <= MAX_ROW_GAP + 1)
            {
                Some(place) => {
                    place.1 += 1;
                    place.2 = y;
                }
                None => places[turn].push((x, 1, y)),
            }
        }
    }
    let mut seen = [false; TURN_COUNT];
    for (turn, found) in places.iter().enumerate() {
        seen[turn] = found.iter().any(|&(_, rows, _)| rows >= MIN_ROWS);
    }
    seen
}

/// A frame as PNG, for the screenshots users look at.
pub fn to_png(image: &Rgb) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, image.width as u32, image.height as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    let data: Vec<u8> = image.pixels.iter().flatten().copied().collect();
    let written = encoder
        .write_header()
        .and_then(|mut writer| writer.write_image_data(&data));
    if written.is_err() {
        return Vec::new();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Draws `mark` at (x, y) with `unit`-wide blocks, `space`-wide gaps and
    /// `rows` rows, with one anti-aliased column at each group's edges.
    fn draw(
        image: &mut Rgb,
        mark: &[u8],
        x: usize,
        y: usize,
        unit: usize,
        space: usize,
        ink: [u8; 3],
    ) {
        let bg = image.pixels[y * image.width + x];
        let blend = [
            ((ink[0] as u16 + bg[0] as u16) / 2) as u8,
            ((ink[1] as u16 + bg[1] as u16) / 2) as u8,
            ((ink[2] as u16 + bg[2] as u16) / 2) as u8,
        ];
        for row in y..y + 14 {
            let mut at = x;
            for &n in mark {
                let width = n as usize * unit;
                for col in at..at + width {
                    let edge = col == at || col == at + width - 1;
                    image.pixels[row * image.width + col] = if edge { blend } else { ink };
                }
                at += width + space;
            }
        }
    }

    fn blank(colour: [u8; 3]) -> Rgb {
        Rgb {
            width: 400,
            height: 60,
            pixels: vec![colour; 400 * 60],
        }
    }

    #[test]
    fn each_mark_is_told_apart_in_any_colours() {
        for (ink, bg) in [
            ([20, 20, 20], [255, 255, 255]),    // black on white
            ([150, 150, 150], [255, 255, 255]), // grey placeholder text
            ([230, 230, 230], [30, 30, 36]),    // dark theme
            ([200, 40, 40], [40, 160, 40]),     // red on green, near-equal luma
        ] {
            for (turn, mark) in REPLY_MARKS.iter().enumerate() {
                for (unit, space) in [(8, 4), (6, 3), (11, 5)] {
                    let mut image = blank(bg);
                    draw(&mut image, mark, 17, 20, unit, space, ink);
                    let seen = marks_in(&image);
                    let mut want = [false; TURN_COUNT];
                    want[turn] = true;
                    assert_eq!(
                        seen,
                        want,
                        "turn {} ink {ink:?} bg {bg:?} unit {unit}",
                        turn + 1
                    );
                }
            }
        }
    }

    /// Marks striped with rows of the background (scan lines), or
    /// mirrored, are still marks: a person reads them. (Stripes of columns
    /// through anti-aliased edges are not read yet.)
    #[test]
    fn striped_and_mirrored_marks_are_still_seen() {
        let bg = [255, 255, 255];
        for (turn, mark) in REPLY_MARKS.iter().enumerate() {
            let mut want = [false; TURN_COUNT];
            want[turn] = true;
            let mut rows = blank(bg);
            draw(&mut rows, mark, 17, 20, 8, 4, [20, 20, 20]);
            for y in (20..34).step_by(3) {
                rows.pixels[y * 400..(y + 1) * 400].fill(bg);
            }
            assert_eq!(marks_in(&rows), want, "turn {} in scan lines", turn + 1);
            // A thin stripe through each block group.
            let mut split = blank(bg);
            draw(&mut split, mark, 17, 20, 8, 4, [20, 20, 20]);
            let mut at = 17;
            for &n in mark.iter() {
                let width = n as usize * 8;
                for y in 0..60 {
                    split.pixels[y * 400 + at + width / 2] = bg;
                }
                at += width + 4;
            }
            assert_eq!(marks_in(&split), want, "turn {} split", turn + 1);
            let mirrored: Vec<u8> = mark.iter().rev().copied().collect();
            let mut image = blank(bg);
            draw(&mut image, &mirrored, 17, 20, 8, 4, [20, 20, 20]);
            assert_eq!(marks_in(&image), want, "turn {} mirrored", turn + 1);
        }
    }

    /// Text turned a quarter either way (a transcript painted rotated into
    /// a pixmap) is still read: its marks run down or up a column.
    #[test]
    fn marks_turned_a_quarter_either_way_are_seen() {
        let bg = [255, 255, 255];
        for (turn, mark) in REPLY_MARKS.iter().enumerate() {
            let mut want = [false; TURN_COUNT];
            want[turn] = true;
            let mut image = blank(bg);
            draw(&mut image, mark, 17, 20, 8, 4, [20, 20, 20]);
            let (w, h) = (image.width, image.height);
            // 90° clockwise: (x, y) -> (h - 1 - y, x); 270°: (y, w - 1 - x).
            let mut cw = vec![bg; w * h];
            let mut ccw = vec![bg; w * h];
            for y in 0..h {
                for x in 0..w {
                    let p = image.pixels[y * w + x];
                    cw[x * h + (h - 1 - y)] = p;
                    ccw[(w - 1 - x) * h + y] = p;
                }
            }
            for (pixels, how) in [(cw, "90°"), (ccw, "270°")] {
                let turned = Rgb {
                    width: h,
                    height: w,
                    pixels,
                };
                assert_eq!(marks_in(&turned), want, "turn {} at {how}", turn + 1);
            }
        }
    }

    #[test]
    fn text_lines_and_near_invisible_ink_are_no_mark() {
        let mut image = blank([255, 255, 255]);
        // A border line, and "text": short alternating strokes.
        for x in 0..400 {
            image.pixels[5 * 400 + x] = [0, 0, 0];
        }
        for y in 30..44 {
            for x in (10..390).step_by(3) {
                image.pixels[y * 400 + x] = [0, 0, 0];
            }
        }
        assert_eq!(marks_in(&image), [false; TURN_COUNT]);
        let mut faint = blank([255, 255, 255]);
        draw(&mut faint, &REPLY_MARKS[0], 10, 10, 8, 4, [250, 250, 250]);
        assert_eq!(marks_in(&faint), [false; TURN_COUNT]);
    }

    /// Frames of `correct.py` as Qt drew them (DejaVu Sans through the vnc
    /// platform, a seam where two blocks meet), read back as the host does.
    #[test]
    fn the_marks_are_read_from_frames_qt_drew() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/screens");
        for (name, want) in [
            ("correct-before_reset.png", [true, true, false, false]),
            ("correct-after_reset.png", [false; TURN_COUNT]),
            ("correct-final.png", [false, false, true, true]),
        ] {
            let bytes = std::fs::read(format!("{dir}/{name}")).unwrap();
            let image = crate::grading::pixels::decode_png(&bytes, MAX_FRAME_PIXELS).unwrap();
            assert_eq!(marks_in(&image), want, "{name}");
        }
    }

    #[test]
    fn frames_are_decoded_with_their_size_checked() {
        use base64::Engine as _;
        use std::io::Write;
        let record = |width: u64, height: u64, bytes: &[u8]| {
            let mut encoder =
                flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(bytes).unwrap();
            let data = base64::engine::general_purpose::STANDARD.encode(encoder.finish().unwrap());
            serde_json::json!({"name": "reply:1", "at_ms": 12.5, "width": width, "height": height, "bgrx_zlib": data})
        };
        let frame = Frame::decode(&record(2, 1, &[1, 2, 3, 0, 4, 5, 6, 0])).unwrap();
        assert_eq!(frame.image.pixels, vec![[3, 2, 1], [6, 5, 4]]);
        assert!(matches!(
            Frame::decode(&record(2, 1, &[0; 7])),
            Err(FrameError::WrongSize { .. })
        ));
        assert!(matches!(
            Frame::decode(&record(2, 1, &[0; 64])),
            Err(FrameError::WrongSize { .. })
        ));
        assert!(matches!(
            Frame::decode(&record(5000, 5000, &[0; 8])),
            Err(FrameError::TooLarge { .. })
        ));
        assert!(Frame::decode(&serde_json::json!({"name": 3})).is_err());
        let png = to_png(&frame.image);
        assert_eq!(
            crate::grading::pixels::decode_png(&png, 100)
                .unwrap()
                .pixels,
            frame.image.pixels
        );
    }
}
