//! A ZIP archive written front to back while its entries are produced, for
//! a body streamed to a client (APPNOTE 6.3.10).
//!
//! - Each entry's size is unknown when it starts, so its local header
//!   carries no sizes and a data descriptor follows its data (flag bit 3).
//!   Entries are Deflate-compressed: some readers refuse a stored entry
//!   whose size only a descriptor gives.
//! - The central directory is written last: an archive cut short has none,
//!   and every reader refuses it, instead of reading a valid archive that
//!   misses rows.
//! - Zip64 where needed: an entry whose sizes, or whose header's offset,
//!   reach 4 GiB gets its sizes as 8 bytes in its descriptor and a Zip64
//!   field in the directory; an archive past 4 GiB or 65,535 entries ends
//!   with the Zip64 end records. Every size and offset is a `u64`.

use bytes::Bytes;
use flate2::{Compress, Compression, FlushCompress, Status};

use crate::platform::web::{BodySender, Gone};

/// Compressed bytes gathered before they are handed to the client.
const CHUNK_BYTES: usize = 64 * 1024;

/// Speed over ratio: rows of JSON shrink several times even at the fastest
/// level, and a download is bounded by the function's duration.
const LEVEL: Compression = Compression::fast();

const LOCAL_HEADER: u32 = 0x0403_4b50;
const DATA_DESCRIPTOR: u32 = 0x0807_4b50;
const CENTRAL_HEADER: u32 = 0x0201_4b50;
const ZIP64_END: u32 = 0x0606_4b50;
const ZIP64_LOCATOR: u32 = 0x0706_4b50;
const END: u32 = 0x0605_4b50;

/// Sizes follow in a data descriptor; names are UTF-8.
const FLAGS: u16 = 0x0008 | 0x0800;
const DEFLATE: u16 = 8;
/// Version needed: 2.0 (Deflate), 4.5 (Zip64).
const VERSION_DEFLATE: u16 = 20;
const VERSION_ZIP64: u16 = 45;
/// Made by: Unix (so the mode below is read), spec version 4.5.
const MADE_BY: u16 = (3 << 8) | VERSION_ZIP64;
/// A regular file, `rw-r--r--`.
const EXTERNAL_ATTRIBUTES: u32 = 0o100_644 << 16;

/// Where 32- and 16-bit fields run out. A field at its limit says "see the
/// Zip64 record"; tests lower them to exercise those records on small
/// archives.
#[derive(Debug, Clone, Copy)]
struct Limits {
    field32: u64,
    field16: u64,
}

const LIMITS: Limits = Limits {
    field32: 0xFFFF_FFFF,
    field16: 0xFFFF,
};

#[derive(Debug, thiserror::Error)]
pub enum ZipError {
    #[error(transparent)]
    Gone(#[from] Gone),
    #[error("compressing an entry: {0}")]
    Compress(#[from] flate2::CompressError),
}

/// An entry whose data is being written.
struct Open {
    name: String,
    offset: u64,
    crc: crc32fast::Hasher,
    deflate: Compress,
}

/// A finished entry, for the central directory.
struct Written {
    name: String,
    offset: u64,
    crc: u32,
    compressed: u64,
    uncompressed: u64,
}

pub struct ZipWriter {
    sink: BodySender,
    /// Bytes not yet handed to the client.
    out: Vec<u8>,
    /// Bytes handed to the client so far.
    flushed: u64,
    entries: Vec<Written>,
    open: Option<Open>,
    /// The entries' modification time, as MS-DOS time and date.
    dos_time: u16,
    dos_date: u16,
    limits: Limits,
}

impl ZipWriter {
    /// An archive whose entries are dated `modified` (UTC).
    pub fn new(sink: BodySender, modified: chrono::DateTime<chrono::Utc>) -> Self {
        let (dos_date, dos_time) = dos_date_time(modified);
        Self {
            sink,
            out: Vec::with_capacity(CHUNK_BYTES * 2),
            flushed: 0,
            entries: Vec::new(),
            open: None,
            dos_time,
            dos_date,
            limits: LIMITS,
        }
    }

    /// Starts an entry (finishing the one before); data follows with
    /// [`Self::write`].
    pub async fn start(&mut self, name: &str) -> Result<(), ZipError> {
        self.finish_entry().await?;
        let offset = self.offset();
        self.put_u32(LOCAL_HEADER);
        self.put_u16(VERSION_DEFLATE);
        self.put_u16(FLAGS);
        self.put_u16(DEFLATE);
        self.put_u16(self.dos_time);
        self.put_u16(self.dos_date);
        // CRC and sizes: in the descriptor.
        self.put_u32(0);
        self.put_u32(0);
        self.put_u32(0);
        self.put_u16(name_length(name));
        self.put_u16(0);
        self.put(name.as_bytes());
        self.open = Some(Open {
            name: name.to_owned(),
            offset,
            crc: crc32fast::Hasher::new(),
            deflate: Compress::new(LEVEL, false),
        });
        self.flush_if_full().await
    }

    /// Appends `data` to the open entry.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), ZipError> {
        let open = self
            .open
            .as_mut()
            .expect("write is called after start, never after finish");
        open.crc.update(data);
        let mut input = data;
        while !input.is_empty() {
            self.out.reserve(CHUNK_BYTES);
            let before = open.deflate.total_in();
            open.deflate
                .compress_vec(input, &mut self.out, FlushCompress::None)?;
            let consumed = (open.deflate.total_in() - before) as usize;
            input = &input[consumed..];
            if self.out.len() >= CHUNK_BYTES {
                let chunk = std::mem::replace(&mut self.out, Vec::with_capacity(CHUNK_BYTES * 2));
                self.flushed += chunk.len() as u64;
                self.sink.send(Bytes::from(chunk)).await?;
            }
        }
        Ok(())
    }

    /// Ends the open entry, writes the central directory and the end
    /// records, and hands the rest to the client. The archive is complete
    /// only once this returns.
    pub async fn finish(mut self) -> Result<u64, ZipError> {
        self.finish_entry().await?;
        let directory_offset = self.offset();
        let entries = std::mem::take(&mut self.entries);
        for entry in &entries {
            self.central_header(entry);
            self.flush_if_full().await?;
        }
        let directory_size = self.offset() - directory_offset;
        self.end_records(entries.len() as u64, directory_offset, directory_size);
        self.flush().await?;
        Ok(self.flushed)
    }

    async fn finish_entry(&mut self) -> Result<(), ZipError> {
        let Some(mut open) = self.open.take() else {
            return Ok(());
        };
        loop {
            self.out.reserve(CHUNK_BYTES);
            let status = open
                .deflate
                .compress_vec(&[], &mut self.out, FlushCompress::Finish)?;
            if status == Status::StreamEnd {
                break;
            }
        }
        let written = Written {
            name: open.name,
            offset: open.offset,
            crc: open.crc.finalize(),
            compressed: open.deflate.total_out(),
            uncompressed: open.deflate.total_in(),
        };
        self.put_u32(DATA_DESCRIPTOR);
        self.put_u32(written.crc);
        if self.needs_zip64_sizes(&written) {
            self.put_u64(written.compressed);
            self.put_u64(written.uncompressed);
        } else {
            self.put_u32(written.compressed as u32);
            self.put_u32(written.uncompressed as u32);
        }
        self.entries.push(written);
        self.flush_if_full().await
    }

    fn needs_zip64_sizes(&self, entry: &Written) -> bool {
        entry.compressed >= self.limits.field32 || entry.uncompressed >= self.limits.field32
    }

    fn central_header(&mut self, entry: &Written) {
        let zip64_sizes = self.needs_zip64_sizes(entry);
        let zip64_offset = entry.offset >= self.limits.field32;
        // The Zip64 field holds exactly the values whose fixed fields say
        // "see the Zip64 record", in this order.
        let mut extra = Vec::new();
        if zip64_sizes {
            extra.extend_from_slice(&entry.uncompressed.to_le_bytes());
            extra.extend_from_slice(&entry.compressed.to_le_bytes());
        }
        if zip64_offset {
            extra.extend_from_slice(&entry.offset.to_le_bytes());
        }
        let zip64 = !extra.is_empty();
        self.put_u32(CENTRAL_HEADER);
        self.put_u16(MADE_BY);
        self.put_u16(if zip64 {
            VERSION_ZIP64
        } else {
            VERSION_DEFLATE
        });
        self.put_u16(FLAGS);
        self.put_u16(DEFLATE);
        self.put_u16(self.dos_time);
        self.put_u16(self.dos_date);
        self.put_u32(entry.crc);
        let field = |value: u64, overflows: bool| {
            if overflows { u32::MAX } else { value as u32 }
        };
        self.put_u32(field(entry.compressed, zip64_sizes));
        self.put_u32(field(entry.uncompressed, zip64_sizes));
        self.put_u16(name_length(&entry.name));
        self.put_u16(if zip64 { extra.len() as u16 + 4 } else { 0 });
        self.put_u16(0); // comment
        self.put_u16(0); // disk
        self.put_u16(0); // internal attributes
        self.put_u32(EXTERNAL_ATTRIBUTES);
        self.put_u32(field(entry.offset, zip64_offset));
        self.put(entry.name.as_bytes());
        if zip64 {
            self.put_u16(0x0001);
            self.put_u16(extra.len() as u16);
            self.put(&extra);
        }
    }

    fn end_records(&mut self, count: u64, directory_offset: u64, directory_size: u64) {
        let limits = self.limits;
        let zip64 = count >= limits.field16
            || directory_offset >= limits.field32
            || directory_size >= limits.field32;
        if zip64 {
            let record_offset = self.offset();
            self.put_u32(ZIP64_END);
            // The record's size after this field.
            self.put_u64(44);
            self.put_u16(MADE_BY);
            self.put_u16(VERSION_ZIP64);
            self.put_u32(0); // this disk
            self.put_u32(0); // the directory's disk
            self.put_u64(count);
            self.put_u64(count);
            self.put_u64(directory_size);
            self.put_u64(directory_offset);
            self.put_u32(ZIP64_LOCATOR);
            self.put_u32(0);
            self.put_u64(record_offset);
            self.put_u32(1); // disks
        }
        let count16 = if count >= limits.field16 {
            0xFFFF
        } else {
            count as u16
        };
        let clamp32 = |value: u64| {
            if value >= limits.field32 {
                u32::MAX
            } else {
                value as u32
            }
        };
        self.put_u32(END);
        self.put_u16(0);
        self.put_u16(0);
        self.put_u16(count16);
        self.put_u16(count16);
        self.put_u32(clamp32(directory_size));
        self.put_u32(clamp32(directory_offset));
        self.put_u16(0); // comment
    }

    /// Where the next byte goes in the archive.
    fn offset(&self) -> u64 {
        self.flushed + self.out.len() as u64
    }

    async fn flush_if_full(&mut self) -> Result<(), ZipError> {
        if self.out.len() >= CHUNK_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), ZipError> {
        if self.out.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.out, Vec::with_capacity(CHUNK_BYTES * 2));
        self.flushed += chunk.len() as u64;
        self.sink.send(Bytes::from(chunk)).await?;
        Ok(())
    }

    fn put(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    fn put_u16(&mut self, value: u16) {
        self.put(&value.to_le_bytes());
    }

    fn put_u32(&mut self, value: u32) {
        self.put(&value.to_le_bytes());
    }

    fn put_u64(&mut self, value: u64) {
        self.put(&value.to_le_bytes());
    }
}

/// Entry names are ours (`tables/…`), short and checked when they are made.
fn name_length(name: &str) -> u16 {
    u16::try_from(name.len()).expect("entry names are short")
}

/// MS-DOS date and time: 2-second precision, years from 1980.
fn dos_date_time(at: chrono::DateTime<chrono::Utc>) -> (u16, u16) {
    use chrono::{Datelike, Timelike};
    let year = at.year().clamp(1980, 2107) as u16;
    let date = ((year - 1980) << 9) | ((at.month() as u16) << 5) | at.day() as u16;
    let time = ((at.hour() as u16) << 11) | ((at.minute() as u16) << 5) | (at.second() as u16 / 2);
    (date, time)
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    /// Writes `entries` with `limits` and returns the archive's bytes.
    async fn archive(entries: &[(&str, Vec<u8>)], limits: Limits) -> Vec<u8> {
        let (sink, body) = crate::platform::web::channel();
        let at = chrono::DateTime::parse_from_rfc3339("2026-12-06T10:20:30Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let mut zip = ZipWriter::new(sink, at);
        zip.limits = limits;
        let entries: Vec<(String, Vec<u8>)> = entries
            .iter()
            .map(|(name, data)| ((*name).to_owned(), data.clone()))
            .collect();
        let writer = tokio::spawn(async move {
            for (name, data) in entries {
                zip.start(&name).await.unwrap();
                // In pieces, as rows arrive.
                for piece in data.chunks(1000) {
                    zip.write(piece).await.unwrap();
                }
            }
            zip.finish().await.unwrap()
        });
        let bytes = body.collect().await.unwrap().to_bytes().to_vec();
        assert_eq!(writer.await.unwrap(), bytes.len() as u64);
        bytes
    }

    /// Python's `zipfile` (not our code) reads `bytes`: each entry's name
    /// and text, CRCs checked.
    fn python_reads(bytes: &[u8]) -> serde_json::Value {
        let path = std::env::temp_dir().join(format!("zip-test-{}.zip", uuid::Uuid::new_v4()));
        std::fs::write(&path, bytes).unwrap();
        let output = std::process::Command::new(testkit::python::interpreter("zipfile"))
            .arg(testkit::python::script("read_zip.py"))
            .arg(&path)
            .output()
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    }

    fn sample() -> Vec<(&'static str, Vec<u8>)> {
        let rows: Vec<u8> = (0..20_000)
            .flat_map(|i| {
                format!("{{\"id\": {i}, \"note\": \"row {}\"}}\n", i * 7919 % 1000).into_bytes()
            })
            .collect();
        // Bytes that do not compress: the compressed size exceeds the size.
        let mut noise = vec![0u8; 300_000];
        let mut state = 0x2545_f491_u32;
        for byte in &mut noise {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            *byte = state as u8;
        }
        vec![
            ("tables/public.users.ndjson", rows),
            ("tables/empty.ndjson", Vec::new()),
            ("noise.bin", noise),
            (
                "manifest.json",
                b"{\"format\": \"account-export/1\"}".to_vec(),
            ),
        ]
    }

    fn check(read: &serde_json::Value, entries: &[(&str, Vec<u8>)]) {
        assert!(read.get("error").is_none(), "{read}");
        assert_eq!(read["bad"], serde_json::Value::Null, "every CRC checks out");
        let read = read["entries"].as_array().unwrap();
        assert_eq!(read.len(), entries.len());
        for ((name, data), entry) in entries.iter().zip(read) {
            assert_eq!(entry["name"], *name);
            assert_eq!(entry["method"], 8, "Deflate");
            assert_eq!(entry["size"], data.len());
            if let Ok(text) = std::str::from_utf8(data) {
                assert_eq!(entry["text"], text);
            }
        }
    }

    #[tokio::test]
    async fn a_reader_that_is_not_ours_reads_every_entry_back() {
        let entries = sample();
        let bytes = archive(&entries, LIMITS).await;
        let read = python_reads(&bytes);
        check(&read, &entries);
        assert!(
            !bytes.windows(4).any(|w| w == ZIP64_END.to_le_bytes()),
            "no Zip64 record where none is needed"
        );
    }

    /// Zip64's records only appear past 4 GiB or 65,535 entries; with the
    /// limits lowered, every size, offset and count here needs them.
    #[tokio::test]
    async fn past_the_32_and_16_bit_limits_the_zip64_records_are_read_back() {
        let entries = sample();
        let bytes = archive(
            &entries,
            Limits {
                field32: 100,
                field16: 2,
            },
        )
        .await;
        assert!(bytes.windows(4).any(|w| w == ZIP64_END.to_le_bytes()));
        assert!(bytes.windows(4).any(|w| w == ZIP64_LOCATOR.to_le_bytes()));
        let read = python_reads(&bytes);
        check(&read, &entries);
        let offsets: Vec<u64> = read["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["offset"].as_u64().unwrap())
            .collect();
        assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
    }

    #[tokio::test]
    async fn an_archive_cut_anywhere_before_its_end_is_refused() {
        let entries = sample();
        let bytes = archive(&entries, LIMITS).await;
        for cut in [bytes.len() / 3, bytes.len() - 30, bytes.len() - 1] {
            let read = python_reads(&bytes[..cut]);
            assert!(read.get("error").is_some(), "cut at {cut}: {read}");
        }
    }

    #[test]
    fn dos_times_count_from_1980_in_two_second_steps() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-12-06T10:20:31Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let (date, time) = dos_date_time(at);
        assert_eq!(date, (46 << 9) | (12 << 5) | 6);
        assert_eq!(time, (10 << 11) | (20 << 5) | 15);
    }
}
