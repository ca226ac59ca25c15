//! Defensive PNG decoding for the screenshots the sandbox sends back. Their
//! bytes come from the candidate's side of the trust boundary, so nothing in
//! them is believed: whatever they hold, decoding ends in an image or an
//! error, never a panic, and never allocates more than a small multiple of
//! the caller's pixel cap (an IHDR claiming a huge image with a tiny body, a
//! decompression bomb, an oversized ancillary chunk all end in an error).

use std::panic::{catch_unwind, AssertUnwindSafe};

use png::{BitDepth, ColorType, DecodingError, Transformations};

/// An opaque RGB image: transparent pixels are composited onto white, which
/// is what the window's background shows through them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rgb {
    pub width: usize,
    pub height: usize,
    /// Row-major, `width * height` of them.
    pub pixels: Vec<[u8; 3]>,
}

/// Why a PNG was not decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PixelsError {
    #[error("not a PNG image: its first bytes are not the PNG signature")]
    NotPng,
    #[error(
        "the PNG image is {width}x{height} pixels, more than the {max_pixels} pixels the host \
         decodes; a screenshot that large is not one the harness takes"
    )]
    TooLarge {
        width: u32,
        height: u32,
        max_pixels: usize,
    },
    #[error(
        "decoding the PNG image would take more than {budget_bytes} bytes of memory (an \
         oversized chunk or a decompression bomb); refused"
    )]
    OverBudget { budget_bytes: usize },
    #[error("the PNG image is truncated or corrupt: {0}")]
    Corrupt(String),
    #[error("the PNG image uses a form the host does not decode: {0}")]
    Unsupported(String),
}

/// The memory the `png` crate may take for its own buffers (chunks, the
/// palette, rows), beside the frame buffer this module allocates.
fn decoder_budget(max_pixels: usize) -> usize {
    const FLOOR: usize = 1 << 20;
    max_pixels.saturating_mul(4).saturating_add(FLOOR)
}

/// Decodes the first frame of a PNG (or APNG) with at most `max_pixels`
/// pixels. Any panic in the decoder is turned into `Corrupt`: these bytes
/// must never bring the host down, even through a bug of the `png` crate.
pub fn decode_png(bytes: &[u8], max_pixels: usize) -> Result<Rgb, PixelsError> {
    catch_unwind(AssertUnwindSafe(|| decode_png_unguarded(bytes, max_pixels))).unwrap_or_else(
        |payload| {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            Err(PixelsError::Corrupt(format!(
                "the decoder failed on these bytes ({message})"
            )))
        },
    )
}

/// `decode_png` without its panic guard: for the fuzz tests, so that a
/// panic in this module or in the `png` crate fails them instead of being
/// turned into an error.
#[doc(hidden)]
pub fn decode_png_unguarded(bytes: &[u8], max_pixels: usize) -> Result<Rgb, PixelsError> {
    const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];
    if !bytes.starts_with(&SIGNATURE) {
        return Err(PixelsError::NotPng);
    }
    let budget_bytes = decoder_budget(max_pixels);
    let decode_error = |e: DecodingError| match e {
        DecodingError::LimitsExceeded => PixelsError::OverBudget { budget_bytes },
        DecodingError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            PixelsError::Corrupt("it ends before its image data does".into())
        }
        other => PixelsError::Corrupt(other.to_string()),
    };
    let mut decoder = png::Decoder::new_with_limits(
        bytes,
        png::Limits {
            bytes: budget_bytes,
        },
    );
    // Palette and low bit depths become 8-bit samples, tRNS an alpha channel.
    decoder.set_transformations(Transformations::EXPAND | Transformations::STRIP_16);
    // Text and colour profiles are never looked at: no reason to inflate them.
    decoder.set_ignore_text_chunk(true);
    decoder.set_ignore_iccp_chunk(true);
    // The header alone first: its size is checked before the decoder
    // sizes any buffer from it.
    let (image_width, image_height, interlaced) = {
        let info = decoder.read_header_info().map_err(decode_error)?;
        (info.width, info.height, info.interlaced)
    };
    if image_width == 0 || image_height == 0 {
        return Err(PixelsError::Corrupt(format!(
            "its header gives it {image_width}x{image_height} pixels"
        )));
    }
    if u64::from(image_width) * u64::from(image_height) > max_pixels as u64 {
        return Err(PixelsError::TooLarge {
            width: image_width,
            height: image_height,
            max_pixels,
        });
    }
    let mut reader = decoder.read_info().map_err(decode_error)?;
    let (color_type, bit_depth) = reader.output_color_type();
    let channels = match (color_type, bit_depth) {
        (ColorType::Grayscale, BitDepth::Eight) => 1,
        (ColorType::GrayscaleAlpha, BitDepth::Eight) => 2,
        (ColorType::Rgb, BitDepth::Eight) => 3,
        (ColorType::Rgba, BitDepth::Eight) => 4,
        other => {
            return Err(PixelsError::Unsupported(format!(
                "{other:?} samples after expansion"
            )))
        }
    };
    // The whole image's size: the `png` crate writes the first frame into a
    // buffer that large even when an APNG frame is smaller.
    let mut buffer = vec![0u8; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut buffer).map_err(decode_error)?;
    // The frame's own size: an APNG's first frame (its fcTL) may be
    // narrower and shorter than the image its header describes.
    let (width, height) = (frame.width as usize, frame.height as usize);
    if width == 0 || height == 0 || width > image_width as usize || height > image_height as usize {
        return Err(PixelsError::Corrupt(format!(
            "its first frame is {width}x{height} pixels in a {image_width}x{image_height} image"
        )));
    }
    // Interlaced frames are expanded at the image's stride, others at the frame's.
    let stride = if interlaced {
        reader.output_line_size(image_width)
    } else {
        frame.line_size
    };
    let row_bytes = width * channels;
    if stride < row_bytes || stride.checked_mul(height).is_none_or(|n| n > buffer.len()) {
        return Err(PixelsError::Corrupt(format!(
            "its first frame ({width}x{height}) does not fit the decoded data"
        )));
    }
    let mut pixels = Vec::with_capacity(width * height);
    for row in buffer.chunks(stride).take(height) {
        for px in row[..row_bytes].chunks_exact(channels) {
            pixels.push(match *px {
                [grey] => [grey; 3],
                [grey, alpha] => [over_white(grey, alpha); 3],
                [r, g, b] => [r, g, b],
                [r, g, b, alpha] => [
                    over_white(r, alpha),
                    over_white(g, alpha),
                    over_white(b, alpha),
                ],
                _ => unreachable!("chunks_exact gives `channels` (1 to 4) samples"),
            });
        }
    }
    Ok(Rgb {
        width,
        height,
        pixels,
    })
}

/// A sample seen through `alpha` over a white background, rounded.
fn over_white(sample: u8, alpha: u8) -> u8 {
    let (sample, alpha) = (u32::from(sample), u32::from(alpha));
    ((sample * alpha + 255 * (255 - alpha) + 127) / 255) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(
        width: u32,
        height: u32,
        color: png::ColorType,
        depth: png::BitDepth,
        data: &[u8],
        palette: Option<&[u8]>,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut encoder = png::Encoder::new(&mut out, width, height);
            encoder.set_color(color);
            encoder.set_depth(depth);
            if let Some(palette) = palette {
                encoder.set_palette(palette.to_vec());
            }
            let mut writer = encoder.write_header().unwrap();
            writer.write_image_data(data).unwrap();
        }
        out
    }

    /// Rewrites IHDR's width and height (and its CRC) in an encoded PNG.
    fn with_header_size(mut png: Vec<u8>, width: u32, height: u32) -> Vec<u8> {
        // Signature (8), length (4), "IHDR" (4), then width and height.
        png[16..20].copy_from_slice(&width.to_be_bytes());
        png[20..24].copy_from_slice(&height.to_be_bytes());
        let crc = crc32(&png[12..29]);
        png[29..33].copy_from_slice(&crc.to_be_bytes());
        png
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

    #[test]
    fn every_colour_form_decodes_to_the_same_rgb() {
        let grey = encode(2, 1, ColorType::Grayscale, BitDepth::Eight, &[0, 200], None);
        assert_eq!(
            decode_png(&grey, 100).unwrap().pixels,
            vec![[0; 3], [200; 3]]
        );
        let grey16 = encode(
            2,
            1,
            ColorType::Grayscale,
            BitDepth::Sixteen,
            &[0, 0, 200, 7],
            None,
        );
        assert_eq!(
            decode_png(&grey16, 100).unwrap().pixels,
            vec![[0; 3], [200; 3]]
        );
        let grey_alpha = encode(
            2,
            1,
            ColorType::GrayscaleAlpha,
            BitDepth::Eight,
            &[0, 255, 0, 0],
            None,
        );
        assert_eq!(
            decode_png(&grey_alpha, 100).unwrap().pixels,
            vec![[0; 3], [255; 3]],
            "a transparent pixel shows the white behind it"
        );
        let rgba = encode(
            2,
            1,
            ColorType::Rgba,
            BitDepth::Eight,
            &[10, 20, 30, 255, 0, 0, 0, 128],
            None,
        );
        assert_eq!(
            decode_png(&rgba, 100).unwrap().pixels,
            vec![[10, 20, 30], [127, 127, 127]]
        );
        let palette = encode(
            3,
            1,
            ColorType::Indexed,
            BitDepth::Two,
            &[0b0001_1000],
            Some(&[1, 2, 3, 4, 5, 6, 7, 8, 9]),
        );
        assert_eq!(
            decode_png(&palette, 100).unwrap().pixels,
            vec![[1, 2, 3], [4, 5, 6], [7, 8, 9]]
        );
    }

    /// A PNG written chunk by chunk: for the forms `png::Encoder` does not
    /// write (interlaced, APNG frames smaller than the image).
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

    /// 8-bit grey samples as Adam7 passes of unfiltered scanlines.
    fn adam7(width: usize, height: usize, grey: &[u8]) -> Vec<u8> {
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
                raw.extend((x0..width).step_by(dx).map(|x| grey[y * width + x]));
            }
        }
        raw
    }

    fn grey_png(width: u32, height: u32, interlaced: bool, frame: Option<(u32, u32)>) -> Vec<u8> {
        let (fw, fh) = frame.unwrap_or((width, height));
        let grey: Vec<u8> = (0..fw * fh).map(|i| (i * 7 % 251) as u8).collect();
        let raw = if interlaced {
            adam7(fw as usize, fh as usize, &grey)
        } else {
            grey.chunks(fw.max(1) as usize)
                .flat_map(|row| std::iter::once(0).chain(row.iter().copied()))
                .collect()
        };
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&width.to_be_bytes());
        ihdr.extend_from_slice(&height.to_be_bytes());
        ihdr.extend_from_slice(&[8, 0, 0, 0, u8::from(interlaced)]);
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend(chunk(b"IHDR", &ihdr));
        if let Some((fw, fh)) = frame {
            png.extend(chunk(b"acTL", &[0, 0, 0, 1, 0, 0, 0, 0]));
            let mut fctl = 0u32.to_be_bytes().to_vec();
            for n in [fw, fh, 0, 0] {
                fctl.extend_from_slice(&n.to_be_bytes());
            }
            fctl.extend_from_slice(&[0, 1, 0, 1, 0, 0]);
            png.extend(chunk(b"fcTL", &fctl));
        }
        png.extend(chunk(b"IDAT", &zlib(&raw)));
        png.extend(chunk(b"IEND", &[]));
        png
    }

    fn expected_grey(width: u32, height: u32) -> Vec<[u8; 3]> {
        (0..width * height)
            .map(|i| [(i * 7 % 251) as u8; 3])
            .collect()
    }

    #[test]
    fn an_interlaced_image_is_deinterlaced() {
        let image = decode_png_unguarded(&grey_png(9, 7, true, None), 100).unwrap();
        assert_eq!((image.width, image.height), (9, 7));
        assert_eq!(image.pixels, expected_grey(9, 7));
    }

    #[test]
    fn an_apng_whose_first_frame_is_smaller_than_the_image_gives_that_frame() {
        for interlaced in [false, true] {
            let png = grey_png(100, 100, interlaced, Some((10, 6)));
            let image = decode_png_unguarded(&png, 1 << 20).unwrap();
            assert_eq!(
                (image.width, image.height),
                (10, 6),
                "interlaced: {interlaced}"
            );
            assert_eq!(
                image.pixels,
                expected_grey(10, 6),
                "interlaced: {interlaced}"
            );
        }
    }

    #[test]
    fn a_zero_sized_image_is_an_error() {
        for (w, h) in [(0, 5), (5, 0), (0, 0)] {
            assert!(decode_png(&grey_png(w, h, false, None), 100).is_err());
        }
    }

    #[test]
    fn a_header_claiming_a_huge_image_is_refused_before_any_allocation() {
        let small = encode(2, 2, ColorType::Rgb, BitDepth::Eight, &[0; 12], None);
        let huge = with_header_size(small.clone(), 1 << 30, 1 << 30);
        assert_eq!(
            decode_png(&huge, 16 << 20),
            Err(PixelsError::TooLarge {
                width: 1 << 30,
                height: 1 << 30,
                max_pixels: 16 << 20
            })
        );
        let message = decode_png(&huge, 16 << 20).unwrap_err().to_string();
        assert!(
            message.contains("1073741824x1073741824") && message.contains("16777216"),
            "{message}"
        );
        // Within the cap but with a body far too short for it.
        let short_body = with_header_size(small, 1000, 1000);
        assert!(matches!(
            decode_png(&short_body, 16 << 20),
            Err(PixelsError::Corrupt(_))
        ));
    }

    #[test]
    fn what_is_not_a_png_or_is_cut_short_is_an_error() {
        assert_eq!(decode_png(b"", 100), Err(PixelsError::NotPng));
        assert_eq!(decode_png(b"GIF89a", 100), Err(PixelsError::NotPng));
        let whole = encode(4, 4, ColorType::Rgb, BitDepth::Eight, &[9; 48], None);
        for end in 8..whole.len() - 12 {
            assert!(
                decode_png(&whole[..end], 100).is_err(),
                "cut at {end} of {}",
                whole.len()
            );
        }
        assert_eq!(decode_png(&whole, 100).unwrap().pixels, vec![[9; 3]; 16]);
    }

    #[test]
    fn a_decompression_bomb_is_refused() {
        // 4000x4000 white pixels compress to a few KB; with a cap of 1000
        // pixels the header alone refuses it, and with room for them the
        // frame is decoded within the budget.
        let width = 4000u32;
        let data = vec![255u8; (width * width) as usize];
        let bomb = encode(
            width,
            width,
            ColorType::Grayscale,
            BitDepth::Eight,
            &data,
            None,
        );
        assert!(bomb.len() < 100_000, "{} bytes", bomb.len());
        assert!(matches!(
            decode_png(&bomb, 1000),
            Err(PixelsError::TooLarge { .. })
        ));
        let image = decode_png(&bomb, 16 << 20).unwrap();
        assert_eq!((image.width, image.height), (4000, 4000));
    }

    #[test]
    fn compositing_onto_white_rounds() {
        assert_eq!(over_white(0, 255), 0);
        assert_eq!(over_white(0, 0), 255);
        assert_eq!(over_white(200, 0), 255);
        assert_eq!(over_white(100, 255), 100);
    }
}
