//! Property tests: extraction and static grading never panic, whatever a
//! model (or an attacker) sends: arbitrary text, and fixture answers with
//! random bytes cut, repeated or replaced. The screenshot decoder never
//! panics and allocates within its cap on mutated PNGs and APNGs.

use proptest::prelude::*;

use crate::support::{fixture, prepared};

fn graded(answer: &str) {
    let prepared = prepared();
    if let Ok(extracted) =
        qtjudge::grading::extract::extract(answer, Some(&prepared.task.original_source))
    {
        let _ = qtjudge::grading::static_grade::grade_with(&extracted.script, &prepared.index);
    }
    let _ = qtjudge::grading::static_grade::grade_with(answer, &prepared.index);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(answer in "\\\\PC{0,2000}") {
        graded(&answer);
    }

    #[test]
    fn arbitrary_markdown_shapes_never_panic(
        parts in proptest::collection::vec(
            prop_oneof![
                Just("```python\\n".to_string()), Just("```\\n".to_string()), Just("~~~\\n".to_string()),
                Just("<think>".to_string()), Just("</think>".to_string()), Just("@@ -1 +1 @@\\n".to_string()),
                Just("    def f(self):\\n".to_string()), Just("class A(QMainWindow):\\n".to_string()),
                Just("# ... rest unchanged ...\\n".to_string()), "[ -~]{0,40}\\n",
            ],
            0..60,
        )
    ) {
        graded(&parts.concat());
    }

    #[test]
    fn mutated_fixture_answers_never_panic(cuts in proptest::collection::vec((0usize..40_000, 0usize..400, 0u8..3), 1..8)) {
        let mut answer = fixture("magistral.md").into_bytes();
        for (at, len, how) in cuts {
            let at = at % (answer.len() + 1);
            let end = (at + len).min(answer.len());
            match how {
                0 => { answer.drain(at..end); }
                1 => { let piece = answer[at..end].to_vec(); answer.splice(at..at, piece); }
                _ => { for b in &mut answer[at..end] { *b = b.wrapping_mul(31).wrapping_add(7); } }
            }
        }
        graded(&String::from_utf8_lossy(&answer));
    }
}

/// Inputs shaped to make a careless grader quadratic: many fences, deep
/// brackets on one line, one endless line, many definitions, unclosed
/// strings and `<think>` tags, stray backticks, a long diff.
fn pathological(kind: usize, size: usize) -> String {
    if kind == 8 {
        // A script whose last line opens brackets forever.
        return format!(
            "import sys\n\n\ndef main():\n    x = {}",
            "([{".repeat(size / 3)
        );
    }
    let unit = match kind {
        0 => "```python\nx = 1\n```\n",
        1 => "(((((((((([[[[[[[[[[{{{{{{{{{{",
        2 => "x = 1; ",
        3 => "class A(QMainWindow):\n    def f(self):\n        self.a.b.c(d, e)\n",
        4 => "s = '''unclosed \" ' \\\n",
        5 => "<think>```python\ndef f(:\n",
        6 => "a = `b` $ c\n",
        _ => "@@ -1,3 +1,4 @@\n-old\n+new\n context\n",
    };
    unit.repeat(size / unit.len() + 1)
}

/// What `verify` does before any container: extraction, then static
/// grading of the script extracted.
fn static_stage(answer: &str) -> std::time::Duration {
    let prepared = prepared();
    // The best of three: one slow run under load is the machine, not us.
    (0..3)
        .map(|_| {
            let started = std::time::Instant::now();
            if let Ok(e) =
                qtjudge::grading::extract::extract(answer, Some(&prepared.task.original_source))
            {
                let _ = qtjudge::grading::static_grade::grade_with(&e.script, &prepared.index);
            }
            started.elapsed()
        })
        .min()
        .unwrap()
}

/// Extraction and static grading stay linear in the answer's size: 16
/// times the input may cost at most 48 times the time (a quadratic step
/// would cost 256 times). A ratio, not a speed target: the benchmark
/// measures speed.
#[test]
fn grading_time_grows_linearly_with_the_answer() {
    let small = 24 * 1024;
    let mut slow = Vec::new();
    for kind in 0..9 {
        let base = static_stage(&pathological(kind, small));
        let big = static_stage(&pathological(kind, small * 16));
        // Below a millisecond, timer noise dominates the ratio.
        let floor = std::time::Duration::from_millis(1);
        let ratio = big.as_secs_f64() / base.max(floor).as_secs_f64();
        eprintln!("shape {kind}: {base:?} for 24 KiB, {big:?} for 384 KiB ({ratio:.1}×)");
        if ratio > 48.0 {
            slow.push(format!(
                "shape {kind}: {ratio:.0}× the time for 16× the input"
            ));
        }
    }
    assert!(slow.is_empty(), "superlinear grading: {slow:?}");
}

// --- The screenshot decoder ------------------------------------------------

/// Counts the heap bytes the current thread holds while `peak_allocation`
/// watches it, so that the decoder's memory is measured, not trusted.
struct CountingAllocator;

thread_local! {
    /// (bytes held now, most held) while watched; `None` otherwise.
    static WATCHED: std::cell::Cell<Option<(isize, isize)>> = const { std::cell::Cell::new(None) };
}

fn note_allocation(delta: isize) {
    let _ = WATCHED.try_with(|watched| {
        if let Some((now, peak)) = watched.get() {
            let now = now + delta;
            watched.set(Some((now, peak.max(now))));
        }
    });
}

// SAFETY: every call is passed on to the system allocator unchanged; the
// counting touches only a thread-local Cell, which never allocates.
unsafe impl std::alloc::GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        let ptr = std::alloc::System.alloc(layout);
        if !ptr.is_null() {
            note_allocation(layout.size() as isize);
        }
        ptr
    }
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        let ptr = std::alloc::System.alloc_zeroed(layout);
        if !ptr.is_null() {
            note_allocation(layout.size() as isize);
        }
        ptr
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        std::alloc::System.dealloc(ptr, layout);
        note_allocation(-(layout.size() as isize));
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        let new = std::alloc::System.realloc(ptr, layout, new_size);
        if !new.is_null() {
            note_allocation(new_size as isize - layout.size() as isize);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Runs `f`, returning what it returned and the most heap it held at once.
fn peak_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    WATCHED.with(|w| w.set(Some((0, 0))));
    let out = f();
    let peak = WATCHED.with(|w| w.take()).map_or(0, |(_, peak)| peak);
    (out, peak.max(0) as usize)
}

/// The fuzzed decodes' pixel cap: small, so that a bound on memory is tight.
const FUZZ_MAX_PIXELS: usize = 128 * 128;

/// What the decoder may hold for a cap of `max_pixels`: its frame buffer,
/// the image it returns, the `png` crate's budget (see `pixels`) and the
/// inflater's fixed state.
fn memory_bound(max_pixels: usize) -> usize {
    16 * max_pixels + (2 << 20)
}

/// Decodes without the panic guard (a panic fails the property) and checks
/// that the output and the memory held stay within the cap.
fn decodes_within_bounds(bytes: &[u8], max_pixels: usize) -> Result<(), TestCaseError> {
    let (decoded, peak) =
        peak_allocation(|| qtjudge::grading::pixels::decode_png_unguarded(bytes, max_pixels));
    prop_assert!(
        peak <= memory_bound(max_pixels),
        "{peak} bytes held decoding {} bytes",
        bytes.len()
    );
    if let Ok(image) = decoded {
        prop_assert!(image.width > 0 && image.height > 0);
        prop_assert!(image.width * image.height <= max_pixels);
        prop_assert_eq!(image.pixels.len(), image.width * image.height);
    }
    Ok(())
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[4..]);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

fn zlib(raw: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(raw).unwrap();
    z.finish().unwrap()
}

const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

fn ihdr(width: u32, height: u32, depth: u8, color: u8, interlaced: bool) -> Vec<u8> {
    let mut data = width.to_be_bytes().to_vec();
    data.extend_from_slice(&height.to_be_bytes());
    data.extend_from_slice(&[depth, color, 0, 0, u8::from(interlaced)]);
    chunk(b"IHDR", &data)
}

fn fctl(sequence: u32, width: u32, height: u32) -> Vec<u8> {
    let mut data = Vec::new();
    for n in [sequence, width, height, 0, 0] {
        data.extend_from_slice(&n.to_be_bytes());
    }
    data.extend_from_slice(&[0, 1, 0, 1, 0, 0]);
    chunk(b"fcTL", &data)
}

/// An 8-bit greyscale APNG whose header says `image` and whose first frame
/// (fcTL then IDAT: the default image is that frame) is `frame`, plus a
/// second frame in fdAT.
fn apng(image: (u32, u32), frame: (u32, u32)) -> Vec<u8> {
    let (fw, fh) = frame;
    let mut raw = Vec::new();
    for y in 0..fh {
        raw.push(0);
        raw.extend((0..fw).map(|x| ((x * 7 + y * 13) % 256) as u8));
    }
    let mut png = SIGNATURE.to_vec();
    png.extend(ihdr(image.0, image.1, 8, 0, false));
    png.extend(chunk(b"acTL", &[0, 0, 0, 2, 0, 0, 0, 0]));
    png.extend(fctl(0, fw, fh));
    png.extend(chunk(b"IDAT", &zlib(&raw)));
    png.extend(fctl(1, fw, fh));
    let mut fdat = 2u32.to_be_bytes().to_vec();
    fdat.extend(zlib(&raw));
    png.extend(chunk(b"fdAT", &fdat));
    png.extend(chunk(b"IEND", &[]));
    png
}

/// An interlaced 8-bit RGB image: Adam7 passes of unfiltered scanlines.
fn interlaced_rgb(width: usize, height: usize) -> Vec<u8> {
    const PASSES: [(usize, usize, usize, usize); 7] = [
        (0, 0, 8, 8),
        (4, 0, 8, 8),
        (0, 4, 4, 8),
        (2, 0, 4, 4),
        (0, 2, 2, 4),
        (1, 0, 2, 2),
        (0, 1, 1, 2),
    ];
    let mut raw = Vec::new();
    for (x0, y0, dx, dy) in PASSES {
        if x0 >= width || y0 >= height {
            continue;
        }
        for y in (y0..height).step_by(dy) {
            raw.push(0);
            for x in (x0..width).step_by(dx) {
                raw.extend_from_slice(&[x as u8, y as u8, (x ^ y) as u8]);
            }
        }
    }
    let mut png = SIGNATURE.to_vec();
    png.extend(ihdr(width as u32, height as u32, 8, 2, true));
    png.extend(chunk(b"IDAT", &zlib(&raw)));
    png.extend(chunk(b"IEND", &[]));
    png
}

fn encoded(width: u32, height: u32, color: png::ColorType, depth: png::BitDepth) -> Vec<u8> {
    let samples = match color {
        png::ColorType::Grayscale | png::ColorType::Indexed => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
    };
    let row_bytes = (width as usize * samples * depth as usize).div_ceil(8);
    let data: Vec<u8> = (0..row_bytes * height as usize)
        .map(|i| (i * 37 % 251) as u8)
        .collect();
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(color);
        encoder.set_depth(depth);
        if color == png::ColorType::Indexed {
            encoder.set_palette((0..16 * 3).map(|i| (i * 5) as u8).collect::<Vec<u8>>());
            encoder.set_trns(vec![0u8, 128, 255]);
        }
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(&data).unwrap();
    }
    out
}

/// Valid images of every form the decoder meets: the starting points of
/// the mutations.
fn seeds() -> &'static [Vec<u8>] {
    static SEEDS: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    SEEDS.get_or_init(|| {
        use png::{BitDepth, ColorType};
        vec![
            encoded(40, 30, ColorType::Rgb, BitDepth::Eight),
            encoded(33, 17, ColorType::Rgba, BitDepth::Eight),
            encoded(20, 20, ColorType::Grayscale, BitDepth::Sixteen),
            encoded(21, 9, ColorType::GrayscaleAlpha, BitDepth::Eight),
            encoded(19, 11, ColorType::Indexed, BitDepth::Four),
            encoded(25, 7, ColorType::Grayscale, BitDepth::One),
            encoded(12, 12, ColorType::Rgba, BitDepth::Sixteen),
            interlaced_rgb(23, 13),
            apng((100, 100), (10, 10)),
            apng((50, 40), (50, 40)),
        ]
    })
}

/// Recomputes every chunk's CRC, as far as the chunk lengths make sense,
/// so that a mutation reaches past the CRC check into the decoder.
fn fix_crcs(png: &mut [u8]) {
    let mut at = SIGNATURE.len();
    while at + 12 <= png.len() {
        let length = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
        let Some(end) = at.checked_add(12 + length).filter(|&end| end <= png.len()) else {
            return;
        };
        let crc = crc32(&png[at + 4..end - 4]);
        png[end - 4..end].copy_from_slice(&crc.to_be_bytes());
        at = end;
    }
}

/// Where the data of the first chunk of `kind` starts.
fn chunk_data(png: &[u8], kind: &[u8; 4]) -> Option<usize> {
    png.windows(4).position(|w| w == kind).map(|at| at + 4)
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip {
        at: usize,
        bits: u8,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
    Delete {
        at: usize,
        len: usize,
    },
    Truncate {
        at: usize,
    },
    /// IHDR's width and height (from 0 up to absurd).
    HeaderSize {
        width: u32,
        height: u32,
    },
    /// The first fcTL's width, height and offsets.
    FrameSize {
        width: u32,
        height: u32,
        x: u32,
        y: u32,
    },
}

fn dimension() -> impl Strategy<Value = u32> {
    prop_oneof![
        0u32..200,
        Just(u32::MAX),
        Just(1 << 31),
        Just(1 << 16),
        any::<u32>()
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(at, bits)| Mutation::Flip { at, bits }),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..64)
        )
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (any::<usize>(), 1usize..64).prop_map(|(at, len)| Mutation::Delete { at, len }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        (dimension(), dimension())
            .prop_map(|(width, height)| Mutation::HeaderSize { width, height }),
        (dimension(), dimension(), dimension(), dimension()).prop_map(|(width, height, x, y)| {
            Mutation::FrameSize {
                width,
                height,
                x,
                y,
            }
        }),
    ]
}

fn mutate(png: &mut Vec<u8>, mutation: &Mutation) {
    let len = png.len();
    match mutation {
        Mutation::Flip { at, bits } => png[at % len] ^= bits,
        Mutation::Insert { at, bytes } => {
            let at = at % (len + 1);
            png.splice(at..at, bytes.iter().copied());
        }
        Mutation::Delete { at, len: n } => {
            let at = at % len;
            png.drain(at..(at + n).min(len));
        }
        Mutation::Truncate { at } => png.truncate(at % (len + 1)),
        Mutation::HeaderSize { width, height } => {
            if let Some(at) = chunk_data(png, b"IHDR").filter(|at| at + 8 <= png.len()) {
                png[at..at + 4].copy_from_slice(&width.to_be_bytes());
                png[at + 4..at + 8].copy_from_slice(&height.to_be_bytes());
            }
        }
        Mutation::FrameSize {
            width,
            height,
            x,
            y,
        } => {
            // After the sequence number: width, height, x and y offsets.
            if let Some(at) = chunk_data(png, b"fcTL").filter(|at| at + 20 <= png.len()) {
                for (i, n) in [width, height, x, y].into_iter().enumerate() {
                    png[at + 4 + 4 * i..at + 8 + 4 * i].copy_from_slice(&n.to_be_bytes());
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    /// Valid PNGs and APNGs with random mutations, their CRCs fixed or
    /// not: no panic, and output and memory within the cap.
    #[test]
    fn mutated_pngs_never_panic_and_stay_within_the_cap(
        seed in 0usize..10,
        mutations in proptest::collection::vec(mutation(), 1..6),
        fix in any::<bool>(),
        cap in prop_oneof![Just(FUZZ_MAX_PIXELS), 1usize..2000],
    ) {
        let mut png = seeds()[seed % seeds().len()].clone();
        for m in &mutations {
            if !png.is_empty() {
                mutate(&mut png, m);
            }
        }
        if fix {
            fix_crcs(&mut png);
        }
        decodes_within_bounds(&png, cap)?;
        // The guarded entry point agrees, and never panics either.
        let guarded = qtjudge::grading::pixels::decode_png(&png, cap);
        let unguarded = qtjudge::grading::pixels::decode_png_unguarded(&png, cap);
        prop_assert_eq!(guarded, unguarded);
    }

    /// Arbitrary bytes behind the PNG signature.
    #[test]
    fn arbitrary_bytes_after_the_signature_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut png = SIGNATURE.to_vec();
        png.extend(body);
        decodes_within_bounds(&png, FUZZ_MAX_PIXELS)?;
    }
}

/// Used to panic the host (the screen check sliced the frame buffer with
/// the image's height): an APNG whose first frame is 10x10 in a 100x100
/// image.
#[test]
fn an_apng_whose_first_frame_is_narrower_than_the_image_is_decoded_as_that_frame() {
    let png = apng((100, 100), (10, 10));
    let image = qtjudge::grading::pixels::decode_png_unguarded(&png, FUZZ_MAX_PIXELS).unwrap();
    assert_eq!((image.width, image.height), (10, 10));
    assert_eq!(image.pixels.len(), 100);
    assert_eq!(image.pixels[10 + 3], [(3 * 7 + 13) as u8; 3]);
    // The guarded entry point, as the host calls it.
    assert_eq!(
        qtjudge::grading::pixels::decode_png(&png, FUZZ_MAX_PIXELS),
        Ok(image)
    );
}

/// A header that claims a huge image over a tiny body, and a
/// decompression bomb, are refused within the memory bound.
#[test]
fn huge_claims_and_bombs_are_refused_within_the_memory_bound() {
    let mut png = SIGNATURE.to_vec();
    png.extend(ihdr(60_000, 60_000, 8, 6, false));
    png.extend(chunk(b"IDAT", &zlib(&[0; 16])));
    png.extend(chunk(b"IEND", &[]));
    let (decoded, peak) =
        peak_allocation(|| qtjudge::grading::pixels::decode_png_unguarded(&png, FUZZ_MAX_PIXELS));
    assert!(
        matches!(
            decoded,
            Err(qtjudge::grading::pixels::PixelsError::TooLarge { .. })
        ),
        "{decoded:?}"
    );
    assert!(peak <= memory_bound(FUZZ_MAX_PIXELS), "{peak}");

    // 64 MB of zeros in a 100x100 image: the rows are read, the rest skipped.
    let mut bomb = SIGNATURE.to_vec();
    bomb.extend(ihdr(100, 100, 8, 0, false));
    bomb.extend(chunk(b"IDAT", &zlib(&vec![0; 64 << 20])));
    bomb.extend(chunk(b"IEND", &[]));
    assert!(bomb.len() < 200_000, "{} bytes", bomb.len());
    let (decoded, peak) =
        peak_allocation(|| qtjudge::grading::pixels::decode_png_unguarded(&bomb, FUZZ_MAX_PIXELS));
    assert!(
        peak <= memory_bound(FUZZ_MAX_PIXELS),
        "{peak} bytes for a bomb"
    );
    if let Ok(image) = decoded {
        assert_eq!((image.width, image.height), (100, 100));
    }

    // An ancillary chunk claiming 2 GiB: refused at the budget, not read.
    let mut long_chunk = SIGNATURE.to_vec();
    long_chunk.extend(ihdr(10, 10, 8, 0, false));
    long_chunk.extend_from_slice(&(0x7fff_ffffu32).to_be_bytes());
    long_chunk.extend_from_slice(b"zzZz");
    long_chunk.extend(std::iter::repeat_n(0u8, 4 << 20));
    let (decoded, peak) = peak_allocation(|| {
        qtjudge::grading::pixels::decode_png_unguarded(&long_chunk, FUZZ_MAX_PIXELS)
    });
    assert!(decoded.is_err());
    assert!(
        peak <= memory_bound(FUZZ_MAX_PIXELS),
        "{peak} bytes for a long chunk"
    );
}
