//! The screen plane, checked on the host from the screenshots. Every reply
//! the fake server sends ends in a bar of full-block glyphs, which renders
//! as a solid dark rectangle that no ordinary text or widget draws. Before
//! the reset the window must show such a bar; after it, none may be left.
//! The harness's own reading of the widgets runs in the candidate's
//! process and could be forged, and it cannot see text an app paints
//! itself; these pixels are decoded here, outside the sandbox.

use serde::{Deserialize, Serialize};

/// Appended to every reply: 24 U+2588 FULL BLOCK glyphs (DejaVu, which the
/// image carries, draws them edge to edge).
pub const REPLY_BAR: &str = "████████████████████████";

/// Darker than this (0–255 luma) counts as ink of a bar.
const DARK: u8 = 80;
/// Light gaps a run may jump: glyph edges are anti-aliased.
const MAX_GAP: usize = 2;
/// Narrowest run that counts: a bar wrapped in a narrow widget still has
/// several glyphs per line, while letters never join up this far.
const MIN_WIDTH: usize = 64;
/// A bar is one text line tall: taller dark areas are panels, not bars.
const MIN_HEIGHT: usize = 6;
const MAX_HEIGHT: usize = 48;
/// Screenshots larger than this are not decoded (the harness renders at a
/// fixed size well below it; a bigger one is not ours to trust).
const MAX_PIXELS: usize = 16 << 20;

/// What the host read from the two screenshots.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
pub struct ScreenCheck {
    /// Reply bars visible before the reset.
    pub before: usize,
    /// Reply bars still visible after it.
    pub after: usize,
}

impl ScreenCheck {
    /// Compares the two screenshots; `None` when either is missing or
    /// cannot be decoded.
    pub fn of(before_png: &[u8], after_png: &[u8]) -> Option<ScreenCheck> {
        Some(ScreenCheck {
            before: count_bars(&Luma::decode(before_png)?),
            after: count_bars(&Luma::decode(after_png)?),
        })
    }

    /// The host's own verdict on the screen plane: `Some(false)` when a
    /// reply is still on screen after the reset, `Some(true)` when the bars
    /// seen before are gone, `None` when the window never showed one (an app
    /// that hides replies, or screenshots that show nothing).
    pub fn cleared(&self) -> Option<bool> {
        (self.before > 0).then_some(self.after == 0)
    }
}

/// A grey-scale image.
struct Luma {
    width: usize,
    height: usize,
    pixels: Vec<u8>,
}

impl Luma {
    fn decode(png_bytes: &[u8]) -> Option<Luma> {
        let mut decoder = png::Decoder::new(png_bytes);
        decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
        let mut reader = decoder.read_info().ok()?;
        let (width, height) = {
            let info = reader.info();
            (info.width as usize, info.height as usize)
        };
        if width.checked_mul(height)? > MAX_PIXELS {
            return None;
        }
        let mut buffer = vec![0; reader.output_buffer_size()];
        let frame = reader.next_frame(&mut buffer).ok()?;
        let channels = frame.color_type.samples();
        let stride = frame.line_size;
        let mut pixels = Vec::with_capacity(width * height);
        for row in buffer[..stride * height].chunks_exact(stride) {
            for px in row[..width * channels].chunks_exact(channels) {
                let luma = match channels {
                    1 | 2 => px[0] as u32,
                    _ => (px[0] as u32 * 299 + px[1] as u32 * 587 + px[2] as u32 * 114) / 1000,
                };
                // A transparent pixel shows nothing.
                let visible = match channels {
                    2 => px[1] > 127,
                    4 => px[3] > 127,
                    _ => true,
                };
                pixels.push(if visible { luma as u8 } else { 255 });
            }
        }
        Some(Luma {
            width,
            height,
            pixels,
        })
    }

    /// The dark runs of row `y`, as `[start, end)` columns.
    fn runs(&self, y: usize) -> Vec<(usize, usize)> {
        let row = &self.pixels[y * self.width..(y + 1) * self.width];
        let mut runs = Vec::new();
        let mut start: Option<usize> = None;
        let mut last_dark = 0;
        for (x, &luma) in row.iter().enumerate() {
            if luma < DARK {
                match start {
                    Some(_) if x - last_dark > MAX_GAP + 1 => {
                        runs.push((start.take().unwrap_or(0), last_dark + 1));
                        start = Some(x);
                    }
                    None => start = Some(x),
                    _ => {}
                }
                last_dark = x;
            }
        }
        if let Some(s) = start {
            runs.push((s, last_dark + 1));
        }
        runs.retain(|(s, e)| e - s >= MIN_WIDTH);
        runs
    }
}

/// Counts the bar-shaped dark rectangles: runs at least `MIN_WIDTH` wide
/// stacked over `MIN_HEIGHT..=MAX_HEIGHT` rows.
fn count_bars(image: &Luma) -> usize {
    // Open stacks: (start, end, height) of the run on the row above.
    let mut open: Vec<(usize, usize, usize)> = Vec::new();
    let mut bars = 0;
    let closes =
        |(_, _, height): (usize, usize, usize)| (MIN_HEIGHT..=MAX_HEIGHT).contains(&height);
    for y in 0..image.height {
        let mut next = Vec::new();
        for (start, end) in image.runs(y) {
            let below = open
                .iter()
                .position(|&(s, e, _)| overlap(s, e, start, end) * 2 >= (e - s).min(end - start));
            let height = match below {
                Some(i) => open.swap_remove(i).2 + 1,
                None => 1,
            };
            next.push((start, end, height));
        }
        bars += open.into_iter().filter(|&stack| closes(stack)).count();
        open = next;
    }
    bars + open.into_iter().filter(|&stack| closes(stack)).count()
}

fn overlap(a0: usize, a1: usize, b0: usize, b1: usize) -> usize {
    a1.min(b1).saturating_sub(a0.max(b0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A white image with dark rectangles `(x, y, w, h)`.
    fn png_with(
        width: u32,
        height: u32,
        rects: &[(usize, usize, usize, usize)],
        rgba: bool,
    ) -> Vec<u8> {
        let channels = if rgba { 4 } else { 3 };
        let mut data = vec![255u8; width as usize * height as usize * channels];
        for &(x, y, w, h) in rects {
            for row in y..y + h {
                for col in x..x + w {
                    let at = (row * width as usize + col) * channels;
                    data[at..at + 3].copy_from_slice(&[20, 20, 20]);
                }
            }
        }
        let mut out = Vec::new();
        {
            let mut encoder = png::Encoder::new(&mut out, width, height);
            encoder.set_color(if rgba {
                png::ColorType::Rgba
            } else {
                png::ColorType::Rgb
            });
            encoder.set_depth(png::BitDepth::Eight);
            let mut writer = encoder.write_header().unwrap();
            writer.write_image_data(&data).unwrap();
        }
        out
    }

    #[test]
    fn a_reply_bar_is_found_and_text_lines_borders_and_panels_are_not() {
        let bar = (40, 30, 240, 13);
        let border = (0, 100, 400, 1);
        let panel = (300, 150, 90, 120);
        let short = (10, 200, 30, 13);
        let image = png_with(400, 300, &[bar, border, panel, short], false);
        assert_eq!(count_bars(&Luma::decode(&image).unwrap()), 1);
        let two = png_with(400, 300, &[(10, 10, 240, 13), (10, 60, 100, 12)], true);
        assert_eq!(count_bars(&Luma::decode(&two).unwrap()), 2);
        let none = png_with(400, 300, &[border, panel], true);
        assert_eq!(count_bars(&Luma::decode(&none).unwrap()), 0);
    }

    #[test]
    fn glyph_gaps_inside_a_bar_do_not_split_it() {
        let glyphs: Vec<_> = (0..24).map(|i| (20 + i * 10, 40, 9, 13)).collect();
        let image = png_with(400, 100, &glyphs, false);
        assert_eq!(count_bars(&Luma::decode(&image).unwrap()), 1);
    }

    #[test]
    fn the_verdict_needs_a_bar_before_and_none_after() {
        let with = png_with(300, 80, &[(10, 10, 240, 13)], false);
        let without = png_with(300, 80, &[], false);
        let cleared = ScreenCheck::of(&with, &without).unwrap();
        assert_eq!(
            cleared,
            ScreenCheck {
                before: 1,
                after: 0
            }
        );
        assert_eq!(cleared.cleared(), Some(true));
        assert_eq!(
            ScreenCheck::of(&with, &with).unwrap().cleared(),
            Some(false)
        );
        assert_eq!(ScreenCheck::of(&without, &without).unwrap().cleared(), None);
        assert!(ScreenCheck::of(b"not a png", &with).is_none());
    }
}
