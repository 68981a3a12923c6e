//! The summary files: one file per offer in the `summaries` directory of the state, with
//! the [`EntrySummary`] of each of the offer's drafts, keyed by draft id.
//!
//! A sweep needs the summary of every known draft of an offer. sled keeps each page it
//! reads in memory until many more reads go through the same part of its cache. When the
//! summaries were stored in sled, loading them left about 4 MiB resident at 100,000
//! drafts (measured with heaptrack). A plain file is streamed into the in-memory index
//! and leaves nothing behind. The files are derived data:
//! [`super::Store`] rebuilds one from the `drafts` tree when it is missing, stale or
//! damaged, so they need no transaction with sled.
//!
//! This module reads and writes the files. [`super::Store`] decides when to write one and
//! when to rebuild one.
//!
//! A file is a header, the records and a checksum:
//!
//! | bytes | field |
//! | --- | --- |
//! | 8 | [`MAGIC`] |
//! | 8 | number of records, little-endian |
//! | per record: 2 | id length n, little-endian |
//! | n | draft id, UTF-8 |
//! | 8 | [`EntrySummary::state_hash`], little-endian |
//! | 8 | [`EntrySummary::status_since`], little-endian |
//! | 1 | [`EntrySummary::status`] |
//! | 1 | flags: 1 stuck announced, 2 has the draft object |
//! | 8 | checksum, little-endian: see [`checksum`] |

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::sweep::{EntrySummary, FNV_OFFSET, StatusCode, fnv1a_64, since_seconds};

/// The first bytes of every summary file, with the file layout's version.
const MAGIC: &[u8; 8] = b"dwsumm01";

/// The directory, inside the state directory, that contains the summary files.
pub const DIR: &str = "summaries";

const STUCK_ANNOUNCED: u8 = 1;
const HAS_DRAFT: u8 = 2;

/// A test's callback with the path of a file [`Writer::commit`] just renamed into place.
#[cfg(test)]
pub type RenameHook = Box<dyn FnMut(&Path)>;

#[cfg(test)]
thread_local! {
    /// Runs right after [`Writer::commit`] renames a file into place, so that a test can copy
    /// the state directory as a crash at that moment would leave it.
    pub static AFTER_RENAME: std::cell::RefCell<Option<RenameHook>> = const { std::cell::RefCell::new(None) };
}

/// An error reading a summary file.
#[derive(Debug, thiserror::Error)]
pub enum SummaryError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },

    #[error("{path} is missing")]
    Missing { path: PathBuf },

    #[error("{path} is damaged: {reason}")]
    Damaged { path: PathBuf, reason: &'static str },
}

/// Returns the path of the summary file of `offer_id` in the state directory `state`.
///
/// The name is the offer id in hexadecimal, so that no offer id can name another path.
/// An id longer than [`SPELLED_OUT`] bytes is cut there and followed by its hash, which
/// keeps the name within the 255-byte limit of common file systems.
pub fn file_path(state: &Path, offer_id: &str) -> PathBuf {
    let spelled = &offer_id.as_bytes()[..offer_id.len().min(SPELLED_OUT)];
    let mut name = String::with_capacity(spelled.len() * 2 + 24);
    for byte in spelled {
        name.push_str(&format!("{byte:02x}"));
    }
    if offer_id.len() > SPELLED_OUT {
        name.push_str(&format!("-{:016x}", crate::sweep::id_hash(offer_id)));
    }
    name.push_str(".bin");
    state.join(DIR).join(name)
}

/// How many bytes of an offer id a summary file name spells out.
const SPELLED_OUT: usize = 100;

/// Reads a summary file record by record, checking its checksum at the end.
pub struct Reader {
    path: PathBuf,
    input: BufReader<File>,
    header: [u8; 16],
    /// Records not yet read.
    remaining: u64,
    /// FNV-1a state over the record bytes read so far.
    hash: u64,
    /// The id of the last record read.
    id: String,
}

impl Reader {
    /// Opens the summary file at `path`, or returns `None` if it does not exist.
    pub fn open(path: &Path) -> Result<Option<Reader>, SummaryError> {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(SummaryError::Io { path: path.to_owned(), source }),
        };

        let mut reader = Reader {
            path: path.to_owned(),
            input: BufReader::with_capacity(64 * 1024, file),
            header: [0u8; 16],
            remaining: 0,
            hash: FNV_OFFSET,
            id: String::new(),
        };
        let mut header = [0u8; 16];
        reader.input.read_exact(&mut header).map_err(|error| reader.read_error(error))?;
        if &header[..8] != MAGIC {
            return Err(reader.damaged("it does not start with the summary file header"));
        }
        reader.header = header;
        reader.remaining = u64::from_le_bytes(header[8..].try_into().expect("8 bytes"));

        // Callers size their tables by the count, so a damaged one must not pass. A record
        // takes at least 20 bytes: a length, an empty id and the fixed part.
        let size = reader
            .input
            .get_ref()
            .metadata()
            .map_err(|source| SummaryError::Io { path: path.to_owned(), source })?
            .len();
        if reader.remaining > size / 20 {
            return Err(reader.damaged("its record count is larger than the file"));
        }
        Ok(Some(reader))
    }

    /// Returns how many records are still to be read, as the header states.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Returns the next record, or `None` after the last one once the checksum matched.
    pub fn next_record(&mut self) -> Result<Option<(&str, EntrySummary)>, SummaryError> {
        if self.remaining == 0 {
            self.check_end()?;
            return Ok(None);
        }
        self.remaining -= 1;

        let mut length = [0u8; 2];
        self.read_exact(&mut length)?;
        let mut id = vec![0u8; usize::from(u16::from_le_bytes(length))];
        self.read_exact(&mut id)?;
        self.id = String::from_utf8(id).map_err(|_| self.damaged("a draft id is not UTF-8"))?;

        let mut fixed = [0u8; 18];
        self.read_exact(&mut fixed)?;
        Ok(Some((&self.id, decode_fixed(&fixed))))
    }

    fn check_end(&mut self) -> Result<(), SummaryError> {
        let expected = checksum(&self.header, self.hash);
        let mut stored = [0u8; 8];
        self.input.read_exact(&mut stored).map_err(|error| self.read_error(error))?;
        if u64::from_le_bytes(stored) != expected {
            return Err(self.damaged("its checksum does not match its contents"));
        }
        let mut extra = [0u8; 1];
        match self.input.read(&mut extra) {
            Ok(0) => Ok(()),
            Ok(_) => Err(self.damaged("it continues past its checksum")),
            Err(source) => Err(SummaryError::Io { path: self.path.clone(), source }),
        }
    }

    fn read_exact(&mut self, buffer: &mut [u8]) -> Result<(), SummaryError> {
        self.input.read_exact(buffer).map_err(|error| self.read_error(error))?;
        self.hash = fnv1a_64(self.hash, buffer);
        Ok(())
    }

    fn read_error(&self, error: io::Error) -> SummaryError {
        match error.kind() {
            io::ErrorKind::UnexpectedEof => self.damaged("it is cut short"),
            _ => SummaryError::Io { path: self.path.clone(), source: error },
        }
    }

    fn damaged(&self, reason: &'static str) -> SummaryError {
        SummaryError::Damaged { path: self.path.clone(), reason }
    }
}

/// Writes a summary file under a temporary name and puts it in place only when complete,
/// so that a crash leaves either the old file or the new one.
pub struct Writer {
    path: PathBuf,
    temporary: PathBuf,
    output: BufWriter<File>,
    count: u64,
    hash: u64,
}

impl Writer {
    /// Starts the file that will replace the one at `path`.
    pub fn create(path: &Path) -> io::Result<Writer> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let temporary = path.with_extension("tmp");
        let mut output = BufWriter::with_capacity(64 * 1024, File::create(&temporary)?);
        // The record count is written over this placeholder when the file is complete.
        output.write_all(MAGIC)?;
        output.write_all(&0u64.to_le_bytes())?;
        Ok(Writer { path: path.to_owned(), temporary, output, count: 0, hash: FNV_OFFSET })
    }

    /// Appends one record.
    ///
    /// N.B. an id longer than 65,535 bytes is cut to that length; Akua's ids are about 30.
    pub fn push(&mut self, id: &str, summary: &EntrySummary) -> io::Result<()> {
        let mut length = id.len().min(usize::from(u16::MAX));
        while !id.is_char_boundary(length) {
            length -= 1;
        }

        let fixed = encode_fixed(summary);
        for part in [&(length as u16).to_le_bytes()[..], &id.as_bytes()[..length], &fixed] {
            self.output.write_all(part)?;
            self.hash = fnv1a_64(self.hash, part);
        }
        self.count += 1;
        Ok(())
    }

    /// Writes the count and checksum, syncs the file and renames it over the old one.
    pub fn commit(self) -> io::Result<()> {
        let Writer { path, temporary, output, count, hash } = self;
        let mut file = output.into_inner().map_err(|error| error.into_error())?;

        let mut header = [0u8; 16];
        header[..8].copy_from_slice(MAGIC);
        header[8..].copy_from_slice(&count.to_le_bytes());
        file.write_all(&checksum(&header, hash).to_le_bytes())?;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&header)?;
        file.sync_all()?;
        drop(file);

        fs::rename(&temporary, &path)?;
        #[cfg(test)]
        AFTER_RENAME.with_borrow_mut(|hook| hook.as_mut().map(|hook| hook(&path)));
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

/// Streams the records of `old` (if any) into `writer` with `changes` applied: each id's
/// record replaced by the given summary, or dropped for `None`. Ids new to the file go last.
pub fn merge(
    old: Option<Reader>,
    changes: &BTreeMap<String, Option<EntrySummary>>,
    writer: &mut Writer,
) -> Result<(), MergeError> {
    if let Some(mut old) = old {
        while let Some((id, summary)) = old.next_record()? {
            if !changes.contains_key(id) {
                writer.push(id, &summary)?;
            }
        }
    }
    for (id, summary) in changes {
        if let Some(summary) = summary {
            writer.push(id, summary)?;
        }
    }
    Ok(())
}

/// Decodes a shard value of format 2, which kept the summaries in a sled tree as packed
/// records of the same layout as a file's, without header or checksum. Returns `None` if
/// the value is cut short or an id is not UTF-8.
pub fn shard_records(value: &[u8]) -> Option<Vec<(&str, EntrySummary)>> {
    let mut records = Vec::new();
    let mut rest = value;
    while !rest.is_empty() {
        let length = usize::from(u16::from_le_bytes(rest.get(..2)?.try_into().ok()?));
        let id = std::str::from_utf8(rest.get(2..2 + length)?).ok()?;
        let fixed: [u8; 18] = rest.get(2 + length..2 + length + 18)?.try_into().ok()?;
        records.push((id, decode_fixed(&fixed)));
        rest = &rest[2 + length + 18..];
    }
    Some(records)
}

/// An error from [`merge`]: the old file is unreadable, or the new one cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error(transparent)]
    Read(#[from] SummaryError),

    #[error("cannot write the summary file: {0}")]
    Write(#[from] io::Error),
}

/// Decodes the fixed-size part of a record, after its id.
fn decode_fixed(fixed: &[u8; 18]) -> EntrySummary {
    EntrySummary {
        state_hash: u64::from_le_bytes(fixed[0..8].try_into().expect("8 bytes")),
        status_since: since_seconds(i64::from_le_bytes(fixed[8..16].try_into().expect("8 bytes"))),
        status: StatusCode::from_byte(fixed[16]),
        stuck_announced: fixed[17] & STUCK_ANNOUNCED != 0,
        has_draft: fixed[17] & HAS_DRAFT != 0,
    }
}

/// Encodes the fixed-size part of a record, after its id.
fn encode_fixed(summary: &EntrySummary) -> [u8; 18] {
    let mut fixed = [0u8; 18];
    fixed[0..8].copy_from_slice(&summary.state_hash.to_le_bytes());
    fixed[8..16].copy_from_slice(&i64::from(summary.status_since).to_le_bytes());
    fixed[16] = summary.status.as_byte();
    fixed[17] =
        if summary.stuck_announced { STUCK_ANNOUNCED } else { 0 } | if summary.has_draft { HAS_DRAFT } else { 0 };
    fixed
}

/// Returns the checksum of a file: FNV-1a of its header followed by the FNV-1a hash of
/// its records. The writer learns the record count, part of the header, only at the end,
/// so the records are hashed on their own first.
fn checksum(header: &[u8; 16], records_hash: u64) -> u64 {
    fnv1a_64(fnv1a_64(FNV_OFFSET, header), &records_hash.to_le_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::akua::DraftStatus;
    use crate::sweep::state_hash;

    fn summary(etag: &str, since: u32, stuck_announced: bool) -> EntrySummary {
        EntrySummary {
            state_hash: state_hash(&DraftStatus::Configure, etag),
            status_since: since,
            status: StatusCode::of(&DraftStatus::Configure),
            stuck_announced,
            has_draft: true,
        }
    }

    fn write(path: &Path, records: &[(&str, EntrySummary)]) {
        let mut writer = Writer::create(path).unwrap();
        for (id, summary) in records {
            writer.push(id, summary).unwrap();
        }
        writer.commit().unwrap();
    }

    fn read(path: &Path) -> Result<Vec<(String, EntrySummary)>, SummaryError> {
        let mut reader = Reader::open(path)?.expect("the file exists");
        let mut records = Vec::new();
        while let Some((id, summary)) = reader.next_record()? {
            records.push((id.to_owned(), summary));
        }
        Ok(records)
    }

    #[test]
    fn file_round_trips_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = file_path(dir.path(), "offer_1");
        let records = [("odft_1", summary("a", 0, true)), ("odft_é", summary("b", u32::MAX, false))];

        write(&path, &records);

        let read = read(&path).unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!((read[0].0.as_str(), read[0].1), records[0]);
        assert_eq!((read[1].0.as_str(), read[1].1), records[1]);
        assert!(!path.with_extension("tmp").exists());
    }

    #[test]
    fn missing_file_reads_as_none() {
        let dir = tempfile::tempdir().unwrap();

        assert!(Reader::open(&file_path(dir.path(), "offer_1")).unwrap().is_none());
    }

    #[test]
    fn damaged_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = file_path(dir.path(), "offer_1");
        write(&path, &[("odft_1", summary("a", 1, false)), ("odft_2", summary("b", 2, false))]);
        let good = fs::read(&path).unwrap();

        let mut flipped = good.clone();
        flipped[20] ^= 1;
        let mut recounted = good.clone();
        recounted[8] = 1;
        let mut inflated = good.clone();
        inflated[15] = 0x7f;
        let mut extended = good.clone();
        extended.push(0);
        let cases: [(&str, Vec<u8>, &str); 6] = [
            ("count beyond size", inflated, "larger than the file"),
            ("flipped byte", flipped, "checksum"),
            ("count changed", recounted, "checksum"),
            ("cut short", good[..good.len() - 3].to_vec(), "cut short"),
            ("extra byte", extended, "past its checksum"),
            ("foreign file", b"{\"not\": \"a summary file\"}".to_vec(), "header"),
        ];
        for (case, bytes, expected) in cases {
            fs::write(&path, bytes).unwrap();
            let error = read(&path).unwrap_err().to_string();
            assert!(error.contains(expected), "{case}: {error}");
            assert!(error.contains(&path.display().to_string()), "{case}: {error}");
        }
    }

    #[test]
    fn unfinished_write_keeps_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = file_path(dir.path(), "offer_1");
        write(&path, &[("odft_1", summary("a", 1, false))]);

        let mut writer = Writer::create(&path).unwrap();
        writer.push("odft_2", &summary("b", 2, false)).unwrap();
        drop(writer);

        let read = read(&path).unwrap();
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].0, "odft_1");
    }

    #[test]
    fn merge_replaces_adds_and_drops() {
        let dir = tempfile::tempdir().unwrap();
        let path = file_path(dir.path(), "offer_1");
        write(&path, &[("odft_1", summary("a", 1, false)), ("odft_2", summary("a", 1, false))]);
        let changes = BTreeMap::from([
            ("odft_2".to_owned(), None),
            ("odft_1".to_owned(), Some(summary("b", 2, false))),
            ("odft_3".to_owned(), Some(summary("c", 3, true))),
            ("odft_4".to_owned(), None),
        ]);

        let old = Reader::open(&path).unwrap();
        let mut writer = Writer::create(&path).unwrap();
        merge(old, &changes, &mut writer).unwrap();
        writer.commit().unwrap();

        let read = read(&path).unwrap();
        assert_eq!(read, [("odft_1".to_owned(), summary("b", 2, false)), ("odft_3".to_owned(), summary("c", 3, true))]);
    }

    #[test]
    fn long_offer_ids_get_short_names() {
        let long = "offer_".repeat(50);
        let longer = format!("{long}x");

        let name = file_path(Path::new("/state"), &long).file_name().unwrap().len();
        assert!(name <= 255, "{name} bytes");
        assert_ne!(file_path(Path::new("/state"), &long), file_path(Path::new("/state"), &longer));
    }

    #[test]
    fn file_name_is_hex_of_offer() {
        let path = file_path(Path::new("/state"), "../x");

        assert_eq!(path, Path::new("/state/summaries/2e2e2f78.bin"));
    }

    #[test]
    fn format_two_shards_decode() {
        let mut value = Vec::new();
        for (id, summary) in [("odft_1", summary("a", 1, true)), ("odft_22", summary("b", 2, false))] {
            value.extend_from_slice(&(id.len() as u16).to_le_bytes());
            value.extend_from_slice(id.as_bytes());
            value.extend_from_slice(&encode_fixed(&summary));
        }

        let records = shard_records(&value).unwrap();
        assert_eq!(records, [("odft_1", summary("a", 1, true)), ("odft_22", summary("b", 2, false))]);
        assert!(shard_records(&value[..value.len() - 1]).is_none());
        assert!(shard_records(&[0xff]).is_none());
    }
}
