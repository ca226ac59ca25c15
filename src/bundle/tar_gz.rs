//! A `.tar.gz` read in memory by a tar reader of our own: every header
//! checked and every size (an extension, the unpacked stream) bounded
//! before its bytes are read; GNU long names and PAX paths honoured.

use std::io::Read;

use super::limits::{clean_path, skipped, Unpacked};
use super::{BundleError, MAX_BYTES, MAX_FILES};

/// Largest tar header extension (a GNU long name or link name, a PAX
/// header) read: names are at most `MAX_PATH_LEN`, so anything near this is
/// not an app's, and it is refused before a byte of it is held.
const MAX_TAR_EXTENSION: u64 = 64 * 1024;

/// Most bytes a `.tar.gz` may unpack to, headers, padding and skipped files
/// included: what is kept is capped by `MAX_BYTES`, this caps the time
/// spent inflating what is not.
const MAX_TAR_STREAM: u64 = 4 * MAX_BYTES;

/// A .tar.gz's declared unpacked size: its gzip header checked and the
/// size trailer (the stream's length modulo 4 GiB; unpacking checks it).
pub(super) fn gzip_declared(bytes: &[u8]) -> Result<u64, BundleError> {
    let bad = |detail: &str| BundleError::BadArchive {
        format: "tar.gz".into(),
        detail: detail.into(),
    };
    if bytes.len() < 18 || bytes[..2] != [0x1f, 0x8b] {
        return Err(bad("not gzip data (no gzip header)"));
    }
    if bytes[2] != 8 || bytes[3] & 0xe0 != 0 {
        return Err(bad(
            "not gzip data (an unknown compression method or flags)",
        ));
    }
    let trailer: [u8; 4] = bytes[bytes.len() - 4..].try_into().expect("four bytes");
    let declared = u64::from(u32::from_le_bytes(trailer));
    if declared > MAX_TAR_STREAM {
        return Err(BundleError::TooLarge);
    }
    Ok(declared)
}

/// A `.tar.gz` read by its own small parser, not the `tar` crate's entry
/// iterator: that one reads a GNU long-name or PAX record whole, whatever
/// size its header declares (8 GiB fit in an 8 MiB upload), before any
/// entry is seen. Here every size is checked before its bytes are read.
pub(super) fn read_tar_gz(bytes: &[u8]) -> Result<Unpacked, BundleError> {
    let mut stream = TarStream {
        inner: flate2::read::GzDecoder::new(bytes),
        consumed: 0,
    };
    let mut out = Unpacked::default();
    let mut members = 0usize;
    // What the extension records before a member say about it.
    let mut long_name: Option<Vec<u8>> = None;
    let mut pax = PaxOverrides::default();
    while let Some(header) = stream.next_header()? {
        match header.kind {
            b'L' => {
                let mut name = stream.extension(&header, "a tar long-name record", "names")?;
                name.truncate(memchr::memchr(0, &name).unwrap_or(name.len()));
                long_name = Some(name);
                continue;
            }
            // Link targets are never needed: every link is refused.
            b'K' => {
                stream.extension(&header, "a tar long-link-name record", "names")?;
                continue;
            }
            b'x' => {
                let records = stream.extension(&header, "a tar PAX header", "header extensions")?;
                pax = PaxOverrides::parse(&records).map_err(|detail| stream.bad(detail))?;
                continue;
            }
            _ => {}
        }
        members += 1;
        if members > MAX_FILES * 4 {
            return Err(BundleError::TooManyFiles);
        }
        if header.kind == b'g' {
            // Global PAX records carry nothing an app needs (times, charsets).
            stream.extension(&header, "a tar global PAX header", "header extensions")?;
            continue;
        }
        // A GNU long name, else a PAX path, else the header's own.
        let name = long_name.take().or(pax.path.take()).unwrap_or(header.name);
        let size = pax.size.take().unwrap_or(header.size);
        let raw_name = String::from_utf8_lossy(&name).into_owned();
        let not_a_file = |kind: &str| BundleError::NotAFile {
            name: raw_name.clone(),
            kind: kind.into(),
        };
        match header.kind {
            // Old tars mark a folder only by the slash ending its name.
            b'0' | b'\0' | b'7' if !raw_name.ends_with('/') => {}
            b'0' | b'\0' | b'7' | b'5' => {
                clean_path(&raw_name)?;
                stream.skip(size)?;
                continue;
            }
            b'2' => return Err(not_a_file("symbolic link")),
            b'1' => return Err(not_a_file("hard link")),
            b'3' | b'4' => return Err(not_a_file("device")),
            b'6' => return Err(not_a_file("fifo")),
            b'S' => return Err(not_a_file("GNU sparse file")),
            b'D' => return Err(not_a_file("GNU dump directory")),
            b'M' => return Err(not_a_file("GNU multi-volume continuation")),
            b'V' => return Err(not_a_file("volume label")),
            other => {
                return Err(not_a_file(&format!(
                    "`{}` entry",
                    std::ascii::escape_default(other)
                )))
            }
        }
        let path = clean_path(&raw_name)?;
        if size > out.room() {
            return Err(BundleError::TooLarge);
        }
        let data = stream.read(size)?;
        if skipped(&path) {
            continue;
        }
        out.add(path, data)?;
    }
    Ok(out)
}

const TAR_BLOCK: usize = 512;

/// One 512-byte tar header, checked.
struct TarHeader {
    /// The name field, with the ustar prefix when there is one.
    name: Vec<u8>,
    kind: u8,
    size: u64,
}

/// What a PAX header says about the next member.
#[derive(Default)]
struct PaxOverrides {
    path: Option<Vec<u8>>,
    size: Option<u64>,
}

impl PaxOverrides {
    /// Records are `<length> <key>=<value>\n`, the length counting the whole record.
    fn parse(mut records: &[u8]) -> Result<PaxOverrides, String> {
        let mut overrides = PaxOverrides::default();
        // Some writers pad the records with NULs.
        while records.iter().any(|&b| b != 0) {
            let malformed = || "a malformed PAX record".to_string();
            let space = memchr::memchr(b' ', records).ok_or_else(malformed)?;
            let length: usize = std::str::from_utf8(&records[..space])
                .ok()
                .and_then(|digits| digits.parse().ok())
                .filter(|&length| length > space + 1 && length <= records.len())
                .ok_or_else(malformed)?;
            let record = records[space + 1..length]
                .strip_suffix(b"\n")
                .ok_or_else(malformed)?;
            let equals = memchr::memchr(b'=', record).ok_or_else(malformed)?;
            let (key, value) = (&record[..equals], &record[equals + 1..]);
            match key {
                b"path" => overrides.path = Some(value.to_vec()),
                b"size" => {
                    let size = std::str::from_utf8(value)
                        .ok()
                        .and_then(|digits| digits.parse().ok())
                        .ok_or_else(|| "a PAX size that is not a number".to_string())?;
                    overrides.size = Some(size);
                }
                _ => {}
            }
            records = &records[length..];
        }
        Ok(overrides)
    }
}

/// The inflated tar stream, with every byte it will yield counted against
/// `MAX_TAR_STREAM` before it is read.
struct TarStream<R> {
    inner: R,
    consumed: u64,
}

impl<R: Read> TarStream<R> {
    fn bad(&self, detail: String) -> BundleError {
        BundleError::BadArchive {
            format: "tar.gz".into(),
            detail: format!("{detail} (at byte {} of the unpacked tar)", self.consumed),
        }
    }

    /// Counts `len` more bytes, refusing them past the stream's limit.
    fn claim(&mut self, len: u64) -> Result<(), BundleError> {
        let total = self.consumed.saturating_add(len);
        if total > MAX_TAR_STREAM {
            return Err(BundleError::OverLimit {
                what: "the unpacked tar (headers and skipped files included)".into(),
                size: total,
                limit: MAX_TAR_STREAM,
                limit_for: "an unpacked archive".into(),
            });
        }
        Ok(())
    }

    /// The next member's header, `None` at the end of the archive (two zero
    /// blocks, or none and the end of the stream).
    fn next_header(&mut self) -> Result<Option<TarHeader>, BundleError> {
        self.claim(TAR_BLOCK as u64)?;
        let mut block = [0u8; TAR_BLOCK];
        let mut filled = 0;
        while filled < TAR_BLOCK {
            match self.inner.read(&mut block[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.bad(e.to_string())),
            }
        }
        if filled == 0 || block.iter().all(|&b| b == 0) {
            return Ok(None);
        }
        if filled < TAR_BLOCK {
            return Err(self.bad("the archive ends inside a header".into()));
        }
        let header = parse_tar_header(&block).map_err(|detail| self.bad(detail))?;
        self.consumed += TAR_BLOCK as u64;
        Ok(Some(header))
    }

    /// An extension record's content, refused unread when it is over
    /// `MAX_TAR_EXTENSION`.
    fn extension(
        &mut self,
        header: &TarHeader,
        what: &str,
        limit_for: &str,
    ) -> Result<Vec<u8>, BundleError> {
        if header.size > MAX_TAR_EXTENSION {
            return Err(BundleError::OverLimit {
                what: what.into(),
                size: header.size,
                limit: MAX_TAR_EXTENSION,
                limit_for: limit_for.into(),
            });
        }
        self.read(header.size)
    }

    /// A member's `size` bytes and the padding to the next block; `size`
    /// was checked against a limit far below memory.
    fn read(&mut self, size: u64) -> Result<Vec<u8>, BundleError> {
        let padded = padded_to_block(size);
        self.claim(padded)?;
        let mut data = Vec::with_capacity(size as usize);
        (&mut self.inner)
            .take(size)
            .read_to_end(&mut data)
            .map_err(|e| self.bad(e.to_string()))?;
        if (data.len() as u64) < size {
            return Err(self.bad(format!("the archive ends inside a member of {size} bytes")));
        }
        self.skip_unclaimed(padded - size)?;
        self.consumed += size;
        Ok(data)
    }

    /// Passes over a member that is not kept (a folder's content, if any).
    fn skip(&mut self, size: u64) -> Result<(), BundleError> {
        let padded = padded_to_block(size);
        self.claim(padded)?;
        self.skip_unclaimed(padded)
    }

    fn skip_unclaimed(&mut self, len: u64) -> Result<(), BundleError> {
        let skipped = std::io::copy(&mut (&mut self.inner).take(len), &mut std::io::sink())
            .map_err(|e| self.bad(e.to_string()))?;
        if skipped < len {
            return Err(self.bad("the archive ends inside a member".into()));
        }
        self.consumed += len;
        Ok(())
    }
}

/// A member's size with its padding to the next block; a size so large
/// that the padding overflows is sure to be over every limit.
fn padded_to_block(size: u64) -> u64 {
    size.checked_next_multiple_of(TAR_BLOCK as u64)
        .unwrap_or(u64::MAX)
}

fn parse_tar_header(block: &[u8; TAR_BLOCK]) -> Result<TarHeader, String> {
    let field = |range: std::ops::Range<usize>| {
        let bytes = &block[range];
        &bytes[..memchr::memchr(0, bytes).unwrap_or(bytes.len())]
    };
    let recorded = tar_number(&block[148..156])
        .map_err(|e| format!("a header's checksum field is {e} (not a tar archive?)"))?;
    // The checksum is the byte sum with its own field read as spaces;
    // some old writers summed signed bytes.
    let checksum_field = 148..156;
    let (mut unsigned, mut signed) = (0u64, 0i64);
    for (i, &b) in block.iter().enumerate() {
        let b = if checksum_field.contains(&i) { b' ' } else { b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    if recorded != unsigned && i64::try_from(recorded) != Ok(signed) {
        return Err(
            "a header's checksum does not match (not a tar archive, or a damaged one)".into(),
        );
    }
    let size = tar_number(&block[124..136]).map_err(|e| format!("a header's size is {e}"))?;
    // POSIX ustar splits long names into a prefix; GNU's magic (`ustar  `)
    // keeps other fields there.
    let mut name = Vec::new();
    if &block[257..263] == b"ustar\0" {
        let prefix = field(345..500);
        if !prefix.is_empty() {
            name.extend_from_slice(prefix);
            name.push(b'/');
        }
    }
    name.extend_from_slice(field(0..100));
    Ok(TarHeader {
        name,
        kind: block[156],
        size,
    })
}

/// A tar number field: octal digits (padded with spaces or NULs), or
/// GNU's base-256 for big values (the first byte's top bit set).
fn tar_number(field: &[u8]) -> Result<u64, String> {
    if field[0] & 0x80 != 0 {
        if field[0] & 0x40 != 0 {
            return Err("negative".into());
        }
        let mut value = u64::from(field[0] & 0x3f);
        for &b in &field[1..] {
            value = value
                .checked_mul(256)
                .map(|v| v | u64::from(b))
                .ok_or("too large a number")?;
        }
        return Ok(value);
    }
    let digits = field
        .iter()
        .skip_while(|&&b| b == b' ')
        .take_while(|&&b| b != b' ' && b != 0);
    let mut value = 0u64;
    for &b in digits {
        if !(b'0'..=b'7').contains(&b) {
            return Err("not an octal number".into());
        }
        value = value
            .checked_mul(8)
            .map(|v| v | u64::from(b - b'0'))
            .ok_or("too large a number")?;
    }
    Ok(value)
}
