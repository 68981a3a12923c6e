//! The state directory: the snapshot of every draft and the outbox, kept in sled.
//!
//! This is the only module that touches sled. It owns the on-disk layout, the format
//! version, the one-process lock and the transactions that keep a sweep's snapshot writes
//! and the notifications they produced together. It decides nothing about what changed or
//! when to send; it stores what it is given.
//!
//! Layout, one sled tree each:
//! - `meta`: `format_version` as a big-endian u32, and `stale_summaries \0 offer_id` for
//!   each offer whose `summaries` may lag behind `drafts`.
//! - `drafts`: `offer_id \0 draft_id` → [`SnapshotEntry`] as compressed JSON, draft object
//!   included ([`row`]).
//! - `offers`: `offer_id` → JSON [`OfferState`].
//! - `outbox`: big-endian u64 sequence number → JSON [`OutboxEntry`], so iteration order
//!   is detection order.
//!
//! Beside the sled database, the `summaries` directory contains one file per offer with the
//! [`EntrySummary`] of each of its drafts ([`summary`]). The files are derived from
//! `drafts` and written once per offer sweep by [`Store::finish`], not with every commit.
//! Each commit marks the offer's summaries stale in `meta` in its own transaction, and
//! [`Store::finish`] clears the mark, so after a crash in between the next load rebuilds
//! them from `drafts`.
//!
//! The store also keeps the summaries of each offer in memory, loaded from its file on
//! first use and updated by each commit, so a sweep finds unchanged drafts without reading
//! their entries.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::convert::Infallible;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use crate::sweep::{EntrySummary, IdMap, SnapshotEntry, SummaryIndex, id_hash};

mod dir;
mod outbox;
mod row;
mod summary;

use dir::{acquire_lock, create_private_dir};
use row::{EntryRow, decode_row, encode_entry};

pub use outbox::{EntryState, OutboxEntry};

/// The layout this build reads and writes. Raise it with every incompatible change, and
/// teach [`Store::open`] to migrate from the older number.
///
/// Format 2 added the `summaries` tree and moved draft objects into the entry rows.
/// Format 3 compresses the entry rows ([`row`]) and keeps the summaries in files. It still
/// reads the plain rows of format 2, so moving from 2 to 3 only copies the summaries out of
/// their tree. [`Store::open`] migrates a state of format 1 or 2.
pub const FORMAT_VERSION: u32 = 3;

/// How many drafts one transaction writes. A large baseline is written in several
/// transactions, so a 100k-draft offer never builds one huge transaction in memory.
const WRITE_CHUNK: usize = 500;

/// sled's page cache limit in bytes. sled's own default is 1 GiB, far more than a
/// sidecar should take. A sweep reads entries only of drafts that changed (the in-memory
/// summaries identify unchanged ones), so a small cache costs little.
/// N.B. sled measures this in bytes on disk, and it evicts only after many more page
/// accesses, so what it keeps in memory is larger.
const CACHE_CAPACITY: u64 = 1024 * 1024;

/// How long [`Store::open`] retries opening the database.
const REOPEN_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Name of the lock file inside the state directory.
const LOCK_FILE: &str = "draftwatch.lock";

/// An error from opening or using the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "state directory {path} is in use by another draftwatch process{holder}; stop that process, or give this one its own state.path"
    )]
    Locked { path: PathBuf, holder: String },

    #[error(
        "state directory {path} was written by a newer draftwatch (format {found}, this build reads {expected}); run the newer version, or move the directory aside to start over"
    )]
    NewerFormat { path: PathBuf, found: u32, expected: u32 },

    #[error(
        "cannot open the state in {path}: {source}; if the files are damaged, stop draftwatch, move the directory aside (draftwatch then records a fresh baseline and sends nothing for it) and start again"
    )]
    Open { path: PathBuf, source: sled::Error },

    #[error("cannot create state directory {path}: {source}")]
    CreateDir { path: PathBuf, source: std::io::Error },

    #[error("state store operation failed: {0}")]
    Sled(#[from] sled::Error),

    #[error(
        "state entry `{key}` is unreadable: {source}; stop draftwatch and restore the state directory from a backup, or move it aside to start over with a silent baseline"
    )]
    Corrupt { key: String, source: serde_json::Error },

    #[error(
        "state entry `{key}` is unreadable: {reason}; stop draftwatch and restore the state directory from a backup, or move it aside to start over with a silent baseline"
    )]
    Damaged { key: String, reason: String },

    #[error(
        "draft summaries of offer {offer_id} are unreadable: {source}; stop draftwatch and start it again, which rebuilds them from the snapshot"
    )]
    CorruptSummary { offer_id: String, source: summary::SummaryError },

    #[error(
        "cannot write the draft summaries of offer {offer_id}: {source}; check that the state directory is writable and has free space"
    )]
    WriteSummary { offer_id: String, source: std::io::Error },
}

/// The stored state of one offer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferState {
    /// Unix seconds of the first complete listing. Until it exists, new drafts are baseline.
    pub baselined_at: i64,
    /// Unix seconds of the last complete listing of every draft, as opposed to a listing of
    /// non-terminal drafts only. `None` in states written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_full_sweep: Option<i64>,
}

/// The summaries of one offer's drafts, by [`id_hash`] of the draft id.
pub type OfferIndex = SummaryIndex;

/// Summary changes of one offer, by draft id.
type OfferChanges = BTreeMap<String, Option<EntrySummary>>;

/// One draft's snapshot write and the notifications it produced, stored atomically.
#[derive(Clone, Debug)]
pub struct DraftCommit {
    pub draft_id: String,
    /// The new entry, or `None` to drop the entry of a draft whose removal the
    /// notifications record.
    pub entry: Option<SnapshotEntry>,
    pub notifications: Vec<OutboxEntry>,
}

/// Everything one offer's sweep stores.
#[derive(Clone, Debug, Default)]
pub struct SweepCommit {
    pub offer_id: String,
    pub drafts: Vec<DraftCommit>,
    /// The offer's new state, written after every draft: set on the first complete listing
    /// and on each full one.
    pub offer_state: Option<OfferState>,
}

/// An open state directory. Exactly one per process and per directory.
pub struct Store {
    path: PathBuf,
    db: sled::Db,
    drafts: sled::Tree,
    meta: sled::Tree,
    offers: sled::Tree,
    outbox: sled::Tree,
    /// Summaries of the drafts of each offer loaded so far; always equal to what `drafts`
    /// holds for that offer. About 4 MiB per 100,000 drafts.
    index: Mutex<HashMap<String, OfferIndex>>,
    /// Summary changes committed to `drafts` and not yet written to the summary files, by
    /// offer and draft id; `None` drops the draft's summary. Where a crash lost them, `meta`
    /// marks the offer stale.
    unsaved: Mutex<HashMap<String, OfferChanges>>,
    /// Holds the exclusive lock on [`LOCK_FILE`] for as long as the store is open.
    _lock: File,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish_non_exhaustive()
    }
}

impl Store {
    /// Opens or creates the state directory, taking the one-process lock first.
    ///
    /// Migrations and rebuilds of summary files read every entry they concern, and sled
    /// keeps each page it reads in memory for a long time. So they all run here, before
    /// any sweep, and the database is then opened again with an empty cache.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        create_private_dir(path)?;
        let lock = acquire_lock(path)?;

        let store = Store::retry_open_db(path, lock)?;
        let migrated = store.migrate()?;
        let rebuilt = store.rebuild_unfinished()?;
        if !migrated && !rebuilt {
            return Ok(store);
        }

        let Store { db, drafts, meta, offers, outbox, _lock: lock, .. } = store;
        db.flush()?;
        drop((drafts, meta, offers, outbox, db));
        release_freed_memory();
        Store::retry_open_db(path, lock)
    }

    /// Opens the database, retrying for up to [`REOPEN_WAIT`] while sled's lock is taken.
    ///
    /// sled's background threads keep a handle for a moment after the last one is dropped,
    /// and with it sled's own lock on its files. So right after this process closed the
    /// database, opening it can fail with "could not acquire lock". No other draftwatch
    /// process can hold that lock, because this one holds [`LOCK_FILE`].
    /// N.B. sled reports a taken lock only in its error text, so that text is matched.
    fn retry_open_db(path: &Path, lock: File) -> Result<Store, StoreError> {
        let started = std::time::Instant::now();
        loop {
            let attempt =
                lock.try_clone().map_err(|source| StoreError::CreateDir { path: path.join(LOCK_FILE), source })?;
            match Store::open_db(path, attempt) {
                Err(StoreError::Open { source, .. })
                    if started.elapsed() < REOPEN_WAIT && source.to_string().contains("acquire lock") =>
                {
                    tracing::debug!(path = %path.display(), error = %source, "state database still closing; opening it again");
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                result => return result,
            }
        }
    }

    /// Opens the sled database of a locked state directory and checks its format version.
    fn open_db(path: &Path, lock: File) -> Result<Store, StoreError> {
        let db = sled::Config::new()
            .path(path.join("db"))
            .cache_capacity(CACHE_CAPACITY)
            // No background flusher: every write that matters is followed by an explicit
            // flush, and the flusher's segment cleaning paged data in for seconds after
            // each write burst, adding about 20 MiB at 100,000 drafts. Segments are still
            // cleaned as pages are replaced.
            .flush_every_ms(None)
            .open()
            .map_err(|source| StoreError::Open { path: path.to_owned(), source })?;

        let meta = db.open_tree("meta")?;
        let found = stored_format(&meta)?;
        if found > FORMAT_VERSION {
            return Err(StoreError::NewerFormat { path: path.to_owned(), found, expected: FORMAT_VERSION });
        }

        Ok(Store {
            path: path.to_owned(),
            drafts: db.open_tree("drafts")?,
            offers: db.open_tree("offers")?,
            outbox: db.open_tree("outbox")?,
            meta,
            index: Mutex::new(HashMap::new()),
            unsaved: Mutex::new(HashMap::new()),
            db,
            _lock: lock,
        })
    }

    /// Migrates an older format to [`FORMAT_VERSION`]. Returns whether there was anything
    /// to migrate.
    fn migrate(&self) -> Result<bool, StoreError> {
        let found = stored_format(&self.meta)?;
        // N.B. early builds of format 2 still kept the `draft_objects` tree, so its presence
        // calls for the same migration.
        let objects_apart = self.has_tree("draft_objects");
        let summaries_tree = self.has_tree("summaries");

        // The shards are copied first, because the format 1 migration rebuilds every offer's
        // file from the entries and clears its stale mark. Shards copied after it would
        // replace the rebuilt files unnoticed.
        if summaries_tree {
            self.migrate_summaries_to_files()?;
        }
        if found < 2 || objects_apart {
            self.migrate_from_format_1()?;
        }
        // A new state records its format too, so that an older build rejects it.
        if self.meta.get("format_version")?.as_deref() != Some(&FORMAT_VERSION.to_be_bytes()[..]) {
            self.meta.insert("format_version", &FORMAT_VERSION.to_be_bytes())?;
            self.db.flush()?;
        }
        Ok(found < 2 || objects_apart || summaries_tree)
    }

    /// Rebuilds the summary file of every offer that a crash left stale, and of every known
    /// offer with entries whose file is missing. Returns whether it rebuilt any.
    fn rebuild_unfinished(&self) -> Result<bool, StoreError> {
        let mut offers = BTreeSet::new();
        for key in self.meta.scan_prefix(STALE_PREFIX).keys() {
            let key = key?;
            offers.insert(String::from_utf8_lossy(&key[STALE_PREFIX.len()..]).into_owned());
        }
        for offer_id in self.known_offers()? {
            let missing = !summary::file_path(&self.path, &offer_id).exists();
            if missing && self.drafts.scan_prefix(draft_key(&offer_id, "")).next().is_some() {
                tracing::warn!(offer_id, "draft summary file is missing; rebuilding it");
                offers.insert(offer_id);
            }
        }

        for offer_id in &offers {
            self.rebuild_offer_summaries(offer_id)?;
        }
        Ok(!offers.is_empty())
    }

    fn has_tree(&self, name: &str) -> bool {
        self.db.tree_names().iter().any(|tree| tree.as_ref() == name.as_bytes())
    }

    /// Migrates a state of format 1: moves each draft object from `draft_objects` into its
    /// row, then writes the summary files. It reads every entry, so it runs once. A crash
    /// before the new format number is written makes the next open run it again, which
    /// finds the objects already moved.
    fn migrate_from_format_1(&self) -> Result<(), StoreError> {
        tracing::info!(path = %self.path.display(), "migrating the state from format 1");
        let objects = self.db.open_tree("draft_objects")?;
        let mut offers = BTreeSet::new();
        for row in self.drafts.iter() {
            let (key, value) = row?;
            if let Some(split) = key.iter().position(|byte| *byte == 0) {
                offers.insert(String::from_utf8_lossy(&key[..split]).into_owned());
            }
            let mut row: EntryRow<serde_json::Value> = decode_row(&key, &value)?;
            if !row.has_draft || row.draft.is_some() {
                continue;
            }
            row.draft = objects.get(&key)?.map(|bytes| decode(&key, &bytes)).transpose()?;
            self.drafts.insert(&key, encode_entry(&row.into_entry()))?;
        }
        self.db.flush()?;
        self.db.drop_tree("draft_objects")?;

        for offer_id in offers {
            self.rebuild_offer_summaries(&offer_id)?;
        }
        Ok(())
    }

    /// Copies the summaries of format 2, kept in the `summaries` tree as packed shards, into
    /// the summary files, then drops the tree. It reads only the shards, not the entries.
    /// A crash before the tree is dropped makes the next open copy them again.
    fn migrate_summaries_to_files(&self) -> Result<(), StoreError> {
        tracing::info!(path = %self.path.display(), "moving the draft summaries into files");
        let tree = self.db.open_tree("summaries")?;
        let mut current: Option<(String, summary::Writer)> = None;
        for shard in tree.iter() {
            let (key, value) = shard?;
            let offer_id = String::from_utf8_lossy(&key[..key.len().saturating_sub(3)]).into_owned();
            if current.as_ref().is_none_or(|(open, _)| *open != offer_id) {
                if let Some((done, writer)) = current.take() {
                    writer.commit().map_err(write_error(&done))?;
                }
                let writer = summary::Writer::create(&summary::file_path(&self.path, &offer_id))
                    .map_err(write_error(&offer_id))?;
                current = Some((offer_id, writer));
            }

            let (offer_id, writer) = current.as_mut().expect("a writer was opened above");
            let Some(records) = summary::shard_records(&value) else {
                // The load rebuilds it from the entries.
                self.meta.insert(stale_key(offer_id), &[])?;
                continue;
            };
            for (draft_id, entry_summary) in records {
                writer.push(draft_id, &entry_summary).map_err(write_error(offer_id))?;
            }
        }
        if let Some((offer_id, writer)) = current {
            writer.commit().map_err(write_error(&offer_id))?;
        }

        self.db.flush()?;
        self.db.drop_tree("summaries")?;
        Ok(())
    }

    /// Rebuilds one offer's summary file from its entries in `drafts` and clears its stale
    /// mark. It reads every entry of the offer, so it runs only when a state is migrated,
    /// after a crash between a commit and [`Store::finish`], or for a missing or damaged
    /// file.
    fn rebuild_offer_summaries(&self, offer_id: &str) -> Result<(), StoreError> {
        tracing::info!(offer_id, "rebuilding the draft summaries from the snapshot");
        // The entries read below reach the disk before the file, as in `finish`.
        self.db.flush()?;
        let prefix = draft_key(offer_id, "");
        let mut writer =
            summary::Writer::create(&summary::file_path(&self.path, offer_id)).map_err(write_error(offer_id))?;
        for row in self.drafts.scan_prefix(&prefix) {
            let (key, value) = row?;
            let row: EntryRow<IgnoredAny> = decode_row(&key, &value)?;
            let draft_id = String::from_utf8_lossy(&key[prefix.len()..]);
            writer.push(&draft_id, &row.summary()).map_err(write_error(offer_id))?;
        }
        writer.commit().map_err(write_error(offer_id))?;

        self.unsaved.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(offer_id);
        self.meta.remove(stale_key(offer_id))?;
        self.db.flush()?;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads one draft's snapshot entry.
    pub fn snapshot(&self, offer_id: &str, draft_id: &str) -> Result<Option<SnapshotEntry>, StoreError> {
        let key = draft_key(offer_id, draft_id);
        let Some(bytes) = self.drafts.get(&key)? else {
            return Ok(None);
        };
        let row: EntryRow<serde_json::Value> = decode_row(&key, &bytes)?;
        Ok(Some(row.into_entry()))
    }

    /// Runs `f` on the summaries of one offer's drafts, loading them on first use.
    pub fn with_offer_index<R>(&self, offer_id: &str, f: impl FnOnce(&OfferIndex) -> R) -> Result<R, StoreError> {
        let mut index = self.index.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !index.contains_key(offer_id) {
            let loaded = self.load_offer_index(offer_id)?;
            index.insert(offer_id.to_owned(), loaded);
        }
        Ok(f(&index[offer_id]))
    }

    /// Loads one offer's summaries, rebuilding them first when they are marked stale, and
    /// when their file is missing or damaged.
    fn load_offer_index(&self, offer_id: &str) -> Result<OfferIndex, StoreError> {
        if self.meta.contains_key(stale_key(offer_id))? {
            self.rebuild_offer_summaries(offer_id)?;
        }
        match self.read_offer_index(offer_id) {
            Ok(Some(loaded)) => Ok(loaded),
            // No file: an offer never committed has no entries either, so an empty index is
            // right unless entries exist.
            Ok(None) if self.drafts.scan_prefix(draft_key(offer_id, "")).next().is_none() => Ok(OfferIndex::default()),
            Ok(None) => {
                tracing::warn!(offer_id, "draft summary file is missing; rebuilding it");
                self.rebuild_offer_summaries(offer_id)?;
                Ok(self.read_offer_index(offer_id)?.unwrap_or_default())
            }
            Err(StoreError::CorruptSummary { source, .. }) => {
                tracing::warn!(offer_id, error = %source, "draft summaries are unreadable; rebuilding them");
                self.rebuild_offer_summaries(offer_id)?;
                Ok(self.read_offer_index(offer_id)?.unwrap_or_default())
            }
            Err(error) => Err(error),
        }
    }

    /// Reads one offer's summary file, or returns `None` if it has none.
    fn read_offer_index(&self, offer_id: &str) -> Result<Option<OfferIndex>, StoreError> {
        let corrupt = |source| StoreError::CorruptSummary { offer_id: offer_id.to_owned(), source };
        let Some(mut reader) = summary::Reader::open(&summary::file_path(&self.path, offer_id)).map_err(corrupt)?
        else {
            return Ok(None);
        };

        let mut loaded = OfferIndex::with_capacity(usize::try_from(reader.remaining()).unwrap_or(0));
        while let Some((draft_id, summary)) = reader.next_record().map_err(corrupt)? {
            loaded.insert(id_hash(draft_id), summary);
        }
        Ok(Some(loaded))
    }

    /// Returns the ids of the drafts of `offer_id` whose [`id_hash`] is in `hashes`.
    pub fn draft_ids(&self, offer_id: &str, hashes: &[u64]) -> Result<Vec<String>, StoreError> {
        let corrupt = |source| StoreError::CorruptSummary { offer_id: offer_id.to_owned(), source };
        let wanted: IdMap<()> = hashes.iter().map(|hash| (*hash, ())).collect();
        let mut ids = Vec::with_capacity(hashes.len());

        // Drafts committed since the last finish, added or removed, are not in the file yet:
        // what `unsaved` records for them overrides it.
        let mut overridden: IdMap<()> = IdMap::default();
        let unsaved = self.unsaved.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for (draft_id, summary) in unsaved.get(offer_id).into_iter().flatten() {
            if !wanted.contains_key(&id_hash(draft_id)) {
                continue;
            }
            if summary.is_some() {
                ids.push(draft_id.clone());
            }
            overridden.insert(id_hash(draft_id), ());
        }
        drop(unsaved);

        let Some(mut reader) = summary::Reader::open(&summary::file_path(&self.path, offer_id)).map_err(corrupt)?
        else {
            return Ok(ids);
        };
        while let Some((draft_id, _)) = reader.next_record().map_err(corrupt)? {
            let hash = id_hash(draft_id);
            if wanted.contains_key(&hash) && !overridden.contains_key(&hash) {
                ids.push(draft_id.to_owned());
            }
        }
        Ok(ids)
    }

    /// Lists every offer with a stored state: every offer that had a complete listing.
    pub fn known_offers(&self) -> Result<Vec<String>, StoreError> {
        let mut offers = Vec::new();
        for row in self.offers.iter() {
            let (key, _) = row?;
            offers.push(String::from_utf8_lossy(&key).into_owned());
        }
        Ok(offers)
    }

    /// Counts the drafts in the snapshot of the offers whose summaries are loaded: every
    /// offer swept since the store was opened. Reads nothing from disk.
    pub fn snapshot_len(&self) -> usize {
        let index = self.index.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        index.values().map(|offer| offer.len()).sum()
    }

    pub fn offer_state(&self, offer_id: &str) -> Result<Option<OfferState>, StoreError> {
        match self.offers.get(offer_id.as_bytes())? {
            None => Ok(None),
            Some(bytes) => decode(offer_id.as_bytes(), &bytes).map(Some),
        }
    }

    /// Stores one offer's sweep, then [`Store::finish`]es it.
    pub fn commit_sweep(&self, commit: SweepCommit) -> Result<(), StoreError> {
        let offer_id = commit.offer_id.clone();
        self.commit(commit)?;
        self.finish(&offer_id)
    }

    /// Writes the summaries that commits of `offer_id` changed, clears its stale mark and
    /// flushes everything to disk. A damaged summary file makes it rebuild the offer's
    /// summaries from the entries instead.
    pub fn finish(&self, offer_id: &str) -> Result<(), StoreError> {
        // The commits reach the disk before the file that describes them. A crash after the
        // file's rename could otherwise keep the file but lose the commits and their stale
        // mark, and the lost changes would then look already seen.
        self.flush()?;
        let changes = self.unsaved.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(offer_id);
        let Some(changes) = changes else {
            return Ok(());
        };

        match self.write_summaries(offer_id, &changes) {
            Ok(()) => {
                self.meta.remove(stale_key(offer_id))?;
            }
            // The entries contain every committed change, so a rebuild loses none.
            Err(summary::MergeError::Read(error)) => {
                tracing::warn!(offer_id, error = %error, "draft summaries are unreadable; rebuilding them");
                self.rebuild_offer_summaries(offer_id)?;
            }
            // Kept for the next finish, which clears the stale mark and so must write
            // them. The old file is still in place.
            Err(summary::MergeError::Write(source)) => {
                self.restore_unsaved(offer_id, changes);
                return Err(write_error(offer_id)(source));
            }
        }
        self.flush()?;
        release_freed_memory();
        Ok(())
    }

    /// Rewrites one offer's summary file with `changes` applied.
    fn write_summaries(&self, offer_id: &str, changes: &OfferChanges) -> Result<(), summary::MergeError> {
        let path = summary::file_path(&self.path, offer_id);
        let old = summary::Reader::open(&path)?;

        // No file is right for an offer whose every entry is in `changes`. When the loaded
        // index contains more drafts, the file was lost, and writing `changes` alone would make
        // the other drafts look new after a restart.
        if old.is_none() {
            let added = changes.values().filter(|summary| summary.is_some()).count();
            let index = self.index.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if index.get(offer_id).is_some_and(|loaded| loaded.len() != added) {
                return Err(summary::SummaryError::Missing { path }.into());
            }
        }

        let mut writer = summary::Writer::create(&path)?;
        summary::merge(old, changes, &mut writer)?;
        writer.commit()?;
        Ok(())
    }

    /// Puts back summary changes that [`Store::finish`] failed to write, under any change
    /// recorded for the same draft since.
    fn restore_unsaved(&self, offer_id: &str, changes: OfferChanges) {
        let mut unsaved = self.unsaved.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let recorded = unsaved.entry(offer_id.to_owned()).or_default();
        for (draft_id, summary) in changes {
            recorded.entry(draft_id).or_insert(summary);
        }
    }

    /// Stores one offer's sweep, or part of it, without flushing. [`Store::finish`] must
    /// follow the last part.
    ///
    /// Each draft's snapshot write and its outbox entries go into the same transaction,
    /// so after a crash either both are on disk or neither is: the change is then found
    /// again by the next sweep. Drafts are written in chunks of [`WRITE_CHUNK`], and the
    /// offer's state only after the last chunk.
    pub fn commit(&self, commit: SweepCommit) -> Result<(), StoreError> {
        let stale = stale_key(&commit.offer_id);
        for chunk in commit.drafts.chunks(WRITE_CHUNK) {
            let mut draft_rows = Vec::with_capacity(chunk.len());
            let mut outbox_rows = Vec::new();
            for item in chunk {
                draft_rows.push((draft_key(&commit.offer_id, &item.draft_id), item.entry.as_ref().map(encode_entry)));
                for notification in &item.notifications {
                    let mut entry = notification.clone();
                    // N.B. sled reserves id ranges ahead of use, so ids keep rising across restarts.
                    entry.seq = self.db.generate_id()?;
                    outbox_rows.push((entry.seq.to_be_bytes(), encode(&entry)));
                }
            }

            let result: Result<(), TransactionError<Infallible>> = (&self.drafts, &self.meta, &self.outbox)
                .transaction(|(drafts, meta, outbox)| {
                    for (key, row) in &draft_rows {
                        match row {
                            Some(row) => drafts.insert(key.as_slice(), row.as_slice())?,
                            None => drafts.remove(key.as_slice())?,
                        };
                    }
                    meta.insert(stale.as_slice(), &[])?;
                    for (key, value) in &outbox_rows {
                        outbox.insert(key.as_slice(), value.as_slice())?;
                    }
                    Ok::<(), ConflictableTransactionError<Infallible>>(())
                });
            if let Err(error) = result {
                return Err(match error {
                    TransactionError::Storage(error) => StoreError::Sled(error),
                    TransactionError::Abort(never) => match never {},
                });
            }
            self.remember_commit(&commit.offer_id, chunk);
        }

        if let Some(state) = &commit.offer_state {
            self.offers.insert(commit.offer_id.as_bytes(), encode(state))?;
        }
        Ok(())
    }

    /// Applies committed draft writes to the offer's summaries in memory, if they are
    /// loaded, and keeps them in `unsaved` until [`Store::finish`] writes them.
    fn remember_commit(&self, offer_id: &str, chunk: &[DraftCommit]) {
        let mut index = self.index.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut unsaved = self.unsaved.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut loaded = index.get_mut(offer_id);
        let recorded = unsaved.entry(offer_id.to_owned()).or_default();
        for item in chunk {
            let hash = id_hash(&item.draft_id);
            let summary = item.entry.as_ref().map(EntrySummary::of);

            if let Some(loaded) = loaded.as_deref_mut() {
                match summary {
                    Some(summary) => loaded.insert(hash, summary),
                    None => loaded.remove(&hash),
                };
            }
            recorded.insert(item.draft_id.clone(), summary);
        }
    }

    /// Writes everything to disk. A crash before the flush can resend what was delivered
    /// since the last one, under the same event id, but never loses a notification.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}

/// Returns the conversion of an I/O error in writing `offer_id`'s summary file.
fn write_error(offer_id: &str) -> impl Fn(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::WriteSummary { offer_id: offer_id.to_owned(), source }
}

/// The prefix of the `meta` keys that mark an offer's summaries stale.
const STALE_PREFIX: &[u8] = b"stale_summaries\0";

/// Returns the `meta` key that marks an offer's summaries stale.
fn stale_key(offer_id: &str) -> Vec<u8> {
    let mut key = STALE_PREFIX.to_vec();
    key.extend_from_slice(offer_id.as_bytes());
    key
}

/// Returns freed memory to the operating system. glibc keeps freed memory for reuse, so
/// the pages sled drops after a rebuild, or after a sweep's burst of writes, would
/// otherwise stay resident. At 100,000 drafts, a process that rebuilt the summaries on
/// start settled near 30 MiB with this and 85 MiB without.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only returns unused memory of glibc's own heap to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Returns the format version recorded in `meta`: [`FORMAT_VERSION`] for a new state,
/// `u32::MAX` for an unreadable one, so that it is never mistaken for an older format.
fn stored_format(meta: &sled::Tree) -> Result<u32, StoreError> {
    Ok(match meta.get("format_version")? {
        None => FORMAT_VERSION,
        Some(bytes) => bytes.as_ref().try_into().map(u32::from_be_bytes).unwrap_or(u32::MAX),
    })
}

fn draft_key(offer_id: &str, draft_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(offer_id.len() + 1 + draft_id.len());
    key.extend_from_slice(offer_id.as_bytes());
    key.push(0);
    key.extend_from_slice(draft_id.as_bytes());
    key
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("state values always serialize to JSON")
}

fn decode<'de, T: Deserialize<'de>>(key: &[u8], bytes: &'de [u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt { key: printable_key(key), source })
}

/// Returns a tree key as text for an error message, with `/` between its parts.
fn printable_key(key: &[u8]) -> String {
    String::from_utf8_lossy(key).replace('\0', "/")
}

#[cfg(test)]
mod tests {
    use std::fs;

    use serde_json::json;

    use super::*;
    use crate::akua::DraftStatus;
    use crate::event::{Event, EventKind};
    use crate::sinks::Notification;

    fn snapshot(status: DraftStatus, etag: &str) -> SnapshotEntry {
        SnapshotEntry {
            etag: etag.into(),
            status,
            termination_reason: None,
            offer_id: "offer_1".into(),
            first_seen: 1,
            status_since: 1,
            stuck_announced: false,
            draft: None,
        }
    }

    fn notification(id: &str) -> Notification {
        Notification {
            event: Event {
                id: id.into(),
                kind: EventKind::StatusChanged,
                draft_id: "odft_1".into(),
                offer_id: "offer_1".into(),
                previous_status: Some(DraftStatus::Payment),
                status: Some(DraftStatus::Install),
                termination_reason: None,
                customer_email: None,
                detected_at: 1,
                previous_status_secs: Some(5),
                draft: json!({"id": "odft_1"}),
                details: Default::default(),
            },
            rule: Some("paid".into()),
        }
    }

    #[test]
    fn store_commit_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        {
            let store = Store::open(&path).unwrap();
            let commit = SweepCommit {
                offer_id: "offer_1".into(),
                drafts: vec![DraftCommit {
                    draft_id: "odft_1".into(),
                    entry: Some(snapshot(DraftStatus::Install, "2")),
                    notifications: vec![OutboxEntry::new("sales".into(), notification("evt_1"), 10)],
                }],
                offer_state: Some(OfferState { baselined_at: 1, last_full_sweep: None }),
            };
            store.commit_sweep(commit).unwrap();
        }

        let store = Store::open(&path).unwrap();
        assert_eq!(store.snapshot("offer_1", "odft_1").unwrap(), Some(snapshot(DraftStatus::Install, "2")));
        let summaries = store.with_offer_index("offer_1", |index| index.clone()).unwrap();
        assert_eq!(summaries.len(), 1);
        assert_eq!(summaries[&id_hash("odft_1")], EntrySummary::of(&snapshot(DraftStatus::Install, "2")));
        assert_eq!(store.snapshot_len(), 1);
        assert_eq!(store.offer_state("offer_1").unwrap(), Some(OfferState { baselined_at: 1, last_full_sweep: None }));
        let entries = store.outbox_entries().unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].id(), "evt_1:sales");
        assert_eq!(store.snapshot("offer_2", "odft_1").unwrap(), None);
    }

    fn commit_one(store: &Store, draft_id: &str, etag: &str) {
        let put = DraftCommit {
            draft_id: draft_id.into(),
            entry: Some(snapshot(DraftStatus::Payment, etag)),
            notifications: vec![],
        };
        store.commit(SweepCommit { offer_id: "offer_1".into(), drafts: vec![put], offer_state: None }).unwrap();
    }

    #[test]
    fn summaries_rebuilt_after_unfinished_commit() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            commit_one(&store, "odft_1", "1");
            store.finish("offer_1").unwrap();
            commit_one(&store, "odft_2", "1");
            commit_one(&store, "odft_1", "2");
            assert_eq!(store.draft_ids("offer_1", &[id_hash("odft_2")]).unwrap(), ["odft_2"], "unsaved ids are found");
            assert!(store.meta.contains_key(stale_key("offer_1")).unwrap(), "the commit marked the summaries stale");
            // A crash here: the entries are on disk, their summaries are not.
            store.flush().unwrap();
        }

        let store = Store::open(dir.path()).unwrap();
        assert!(!store.meta.contains_key(stale_key("offer_1")).unwrap(), "opening rebuilt them and cleared the mark");
        let index = store.with_offer_index("offer_1", |index| index.clone()).unwrap();
        assert_eq!(index.len(), 2);
        assert_eq!(index[&id_hash("odft_1")], EntrySummary::of(&snapshot(DraftStatus::Payment, "2")));
        assert_eq!(store.draft_ids("offer_1", &[id_hash("odft_2")]).unwrap(), ["odft_2"]);
    }

    /// Commits `draft_ids` of `offer_1` in payment with etag "1", then finishes the offer.
    fn commit_finished(store: &Store, draft_ids: &[&str]) {
        for draft_id in draft_ids {
            commit_one(store, draft_id, "1");
        }
        store.finish("offer_1").unwrap();
    }

    fn remove_one(store: &Store, draft_id: &str) {
        let drop = DraftCommit { draft_id: draft_id.into(), entry: None, notifications: vec![] };
        store.commit(SweepCommit { offer_id: "offer_1".into(), drafts: vec![drop], offer_state: None }).unwrap();
    }

    #[test]
    fn draft_ids_skip_unsaved_removal() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        commit_finished(&store, &["odft_1", "odft_2"]);

        remove_one(&store, "odft_1");
        let wanted = [id_hash("odft_1"), id_hash("odft_2")];
        assert_eq!(store.draft_ids("offer_1", &wanted).unwrap(), ["odft_2"], "a removal before finish counts");

        commit_one(&store, "odft_1", "2");
        let mut found = store.draft_ids("offer_1", &wanted).unwrap();
        found.sort();
        assert_eq!(found, ["odft_1", "odft_2"], "a draft added back is found once");

        remove_one(&store, "odft_1");
        store.finish("offer_1").unwrap();
        assert_eq!(store.draft_ids("offer_1", &wanted).unwrap(), ["odft_2"], "the finished removal counts");
    }

    /// Copies the directory tree at `from` into `to`.
    fn copy_dir(from: &Path, to: &Path) {
        fs::create_dir_all(to).unwrap();
        for entry in fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy_dir(&entry.path(), &target);
            } else {
                fs::copy(entry.path(), target).unwrap();
            }
        }
    }

    /// Runs `f` and copies the state directory `state` into `copy` when the first summary
    /// file is renamed into place. The copy is what a crash at that moment leaves on disk.
    fn copy_at_rename<R>(state: &Path, copy: &Path, f: impl FnOnce() -> R) -> R {
        let (state, copy) = (state.to_owned(), copy.to_owned());
        summary::AFTER_RENAME.set(Some(Box::new(move |_| {
            if !copy.join("db").exists() {
                copy_dir(&state, &copy);
            }
        })));
        let result = f();
        summary::AFTER_RENAME.set(None);
        result
    }

    /// Checks that each draft's summary in `store` agrees with its entry.
    fn assert_summaries_match(store: &Store, draft_ids: &[&str]) {
        let index = store.with_offer_index("offer_1", |index| index.clone()).unwrap();
        for draft_id in draft_ids {
            let entry = store.snapshot("offer_1", draft_id).unwrap();
            let expected = entry.as_ref().map(EntrySummary::of);
            assert_eq!(index.get(&id_hash(draft_id)), expected.as_ref(), "{draft_id}: summary and entry disagree");
        }
    }

    #[test]
    fn finish_crash_keeps_commits() {
        let dir = tempfile::tempdir().unwrap();
        let crashed = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        commit_one(&store, "odft_1", "1");
        store.finish("offer_1").unwrap();
        let added = DraftCommit {
            draft_id: "odft_2".into(),
            entry: Some(snapshot(DraftStatus::Payment, "1")),
            notifications: vec![OutboxEntry::new("sales".into(), notification("evt_2"), 10)],
        };
        let removed = DraftCommit { draft_id: "odft_1".into(), entry: None, notifications: vec![] };
        let drafts = vec![added, removed];
        store.commit(SweepCommit { offer_id: "offer_1".into(), drafts, offer_state: None }).unwrap();

        copy_at_rename(dir.path(), crashed.path(), || store.finish("offer_1")).unwrap();
        drop(store);

        let store = Store::open(crashed.path()).unwrap();
        assert_summaries_match(&store, &["odft_1", "odft_2"]);
        let outbox: Vec<String> = store.outbox_entries().unwrap().iter().map(OutboxEntry::id).collect();
        assert_eq!(outbox, ["evt_2:sales"], "the committed notification survives");
    }

    /// A rebuild on load, here of an offer committed to before its summaries were loaded.
    #[test]
    fn rebuild_crash_keeps_commits() {
        let dir = tempfile::tempdir().unwrap();
        let crashed = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        commit_one(&store, "odft_1", "1");

        copy_at_rename(dir.path(), crashed.path(), || store.with_offer_index("offer_1", |index| index.len())).unwrap();
        drop(store);

        let store = Store::open(crashed.path()).unwrap();
        assert_summaries_match(&store, &["odft_1"]);
    }

    #[test]
    fn failed_finish_keeps_changes() {
        let dir = tempfile::tempdir().unwrap();
        let all = [id_hash("odft_1"), id_hash("odft_2"), id_hash("odft_3")];
        let sorted_ids = |store: &Store| {
            let mut ids = store.draft_ids("offer_1", &all).unwrap();
            ids.sort();
            ids
        };
        {
            let store = Store::open(dir.path()).unwrap();
            commit_finished(&store, &["odft_1", "odft_2"]);
            remove_one(&store, "odft_1");
            commit_one(&store, "odft_3", "1");
            // A directory where the temporary file goes makes the write fail.
            let temporary = summary::file_path(dir.path(), "offer_1").with_extension("tmp");
            fs::create_dir(&temporary).unwrap();

            let error = store.finish("offer_1").unwrap_err();
            assert!(matches!(error, StoreError::WriteSummary { .. }), "{error}");
            assert!(store.meta.contains_key(stale_key("offer_1")).unwrap(), "the mark stays");
            assert_eq!(sorted_ids(&store), ["odft_2", "odft_3"], "the unsaved changes still count");
            commit_one(&store, "odft_1", "2");
            assert_eq!(sorted_ids(&store), ["odft_1", "odft_2", "odft_3"], "a re-added draft counts");

            fs::remove_dir(&temporary).unwrap();
            store.finish("offer_1").unwrap();
            assert!(!store.meta.contains_key(stale_key("offer_1")).unwrap());
            assert_eq!(sorted_ids(&store), ["odft_1", "odft_2", "odft_3"], "the file has every change");
        }

        let store = Store::open(dir.path()).unwrap();
        assert_summaries_match(&store, &["odft_1", "odft_2", "odft_3"]);
        assert_eq!(store.with_offer_index("offer_1", |index| index.len()).unwrap(), 3);
    }

    #[test]
    fn emptied_offer_keeps_empty_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = summary::file_path(dir.path(), "offer_1");
        {
            let store = Store::open(dir.path()).unwrap();
            commit_finished(&store, &["odft_1", "odft_2"]);
            remove_one(&store, "odft_1");
            remove_one(&store, "odft_2");
            store.finish("offer_1").unwrap();
            // An entry written behind the store's back shows whether the next load reads
            // the file or rebuilds it.
            store
                .drafts
                .insert(draft_key("offer_1", "odft_9"), encode_entry(&snapshot(DraftStatus::Done, "9")))
                .unwrap();
        }
        assert_eq!(fs::metadata(&path).unwrap().len(), 24, "a header and a checksum");

        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.with_offer_index("offer_1", |index| index.len()).unwrap(), 0, "the file is read");
        assert!(store.draft_ids("offer_1", &[id_hash("odft_1"), id_hash("odft_2")]).unwrap().is_empty());
    }

    #[test]
    fn file_lost_while_running_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let path = summary::file_path(dir.path(), "offer_1");
        {
            let store = Store::open(dir.path()).unwrap();
            commit_finished(&store, &["odft_1", "odft_2"]);
            assert_eq!(store.with_offer_index("offer_1", |index| index.len()).unwrap(), 2);
            fs::remove_file(&path).unwrap();

            commit_one(&store, "odft_3", "1");
            store.finish("offer_1").unwrap();
        }

        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.with_offer_index("offer_1", |index| index.len()).unwrap(), 3, "no known draft looks new");
    }

    #[test]
    fn finish_repairs_damaged_file() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            commit_one(&store, "odft_1", "1");
            store.finish("offer_1").unwrap();
            fs::write(summary::file_path(dir.path(), "offer_1"), [0xff]).unwrap();

            commit_one(&store, "odft_1", "2");
            commit_one(&store, "odft_2", "1");
            store.finish("offer_1").expect("finish rebuilds unreadable summaries");
            assert!(!store.meta.contains_key(stale_key("offer_1")).unwrap());
            let mut found = store.draft_ids("offer_1", &[id_hash("odft_1"), id_hash("odft_2")]).unwrap();
            found.sort();
            assert_eq!(found, ["odft_1", "odft_2"], "no committed draft is lost from the summaries");
        }

        let store = Store::open(dir.path()).unwrap();
        let index = store.with_offer_index("offer_1", |index| index.clone()).unwrap();
        assert_eq!(index.len(), 2);
        assert_eq!(index[&id_hash("odft_1")], EntrySummary::of(&snapshot(DraftStatus::Payment, "2")));
        assert_eq!(index[&id_hash("odft_2")], EntrySummary::of(&snapshot(DraftStatus::Payment, "1")));
    }

    #[test]
    fn finished_summaries_load_without_rebuild() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            commit_one(&store, "odft_1", "1");
            store.finish("offer_1").unwrap();
            assert!(!store.meta.contains_key(stale_key("offer_1")).unwrap());
            // Entries written behind the store's back are not in the summaries, which
            // shows that the next load reads the summaries, not the entries.
            store
                .drafts
                .insert(draft_key("offer_1", "odft_9"), encode_entry(&snapshot(DraftStatus::Done, "9")))
                .unwrap();
            store.flush().unwrap();
        }

        let store = Store::open(dir.path()).unwrap();
        let index = store.with_offer_index("offer_1", |index| index.clone()).unwrap();
        assert_eq!(index.len(), 1);
        assert!(index.contains_key(&id_hash("odft_1")));
    }

    #[test]
    fn finish_merges_changes_into_file() {
        let dir = tempfile::tempdir().unwrap();
        let ids: Vec<String> = (0..300).map(|index| format!("odft_{index}")).collect();
        {
            let store = Store::open(dir.path()).unwrap();
            for id in &ids {
                commit_one(&store, id, "1");
            }
            store.finish("offer_1").unwrap();

            for id in &ids[..100] {
                commit_one(&store, id, "2");
            }
            let removals = ids[100..150]
                .iter()
                .map(|id| DraftCommit { draft_id: id.clone(), entry: None, notifications: vec![] })
                .collect();
            store.commit(SweepCommit { offer_id: "offer_1".into(), drafts: removals, offer_state: None }).unwrap();
            store.finish("offer_1").unwrap();
            assert!(!store.meta.contains_key(stale_key("offer_1")).unwrap());
        }

        let store = Store::open(dir.path()).unwrap();
        let index = store.with_offer_index("offer_1", |index| index.clone()).unwrap();
        assert_eq!(index.len(), 250);
        for id in &ids[..100] {
            assert_eq!(index[&id_hash(id)], EntrySummary::of(&snapshot(DraftStatus::Payment, "2")), "{id}");
        }
        assert!(ids[100..150].iter().all(|id| !index.contains_key(&id_hash(id))), "removed drafts are gone");
        for id in &ids[150..] {
            assert_eq!(index[&id_hash(id)], EntrySummary::of(&snapshot(DraftStatus::Payment, "1")), "{id}");
        }
    }

    #[test]
    fn damaged_summary_file_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let path = summary::file_path(dir.path(), "offer_1");
        {
            let store = Store::open(dir.path()).unwrap();
            commit_one(&store, "odft_1", "1");
            store.finish("offer_1").unwrap();
            let mut bytes = fs::read(&path).unwrap();
            bytes.pop();
            fs::write(&path, bytes).unwrap();
        }

        let store = Store::open(dir.path()).unwrap();
        let index = store.with_offer_index("offer_1", |index| index.clone()).unwrap();
        assert_eq!(index[&id_hash("odft_1")], EntrySummary::of(&snapshot(DraftStatus::Payment, "1")));
        assert!(summary::Reader::open(&path).unwrap().is_some(), "the rebuild wrote the file again");
    }

    #[test]
    fn missing_summary_file_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            commit_one(&store, "odft_1", "1");
            commit_one(&store, "odft_2", "1");
            let baselined = Some(OfferState { baselined_at: 1, last_full_sweep: None });
            store
                .commit_sweep(SweepCommit { offer_id: "offer_1".into(), drafts: vec![], offer_state: baselined })
                .unwrap();
            // Entries of an offer that was never baselined, which only the load can find.
            let draft = DraftCommit {
                draft_id: "odft_3".into(),
                entry: Some(snapshot(DraftStatus::Payment, "1")),
                notifications: vec![],
            };
            store
                .commit_sweep(SweepCommit { offer_id: "offer_3".into(), drafts: vec![draft], offer_state: None })
                .unwrap();
        }
        fs::remove_file(summary::file_path(dir.path(), "offer_1")).unwrap();
        fs::remove_file(summary::file_path(dir.path(), "offer_3")).unwrap();

        let store = Store::open(dir.path()).unwrap();
        assert!(summary::file_path(dir.path(), "offer_1").exists(), "opening rebuilt the file of a known offer");
        assert_eq!(store.with_offer_index("offer_3", |index| index.len()).unwrap(), 1, "the load rebuilt the other");
        let index = store.with_offer_index("offer_1", |index| index.clone()).unwrap();
        assert_eq!(index.len(), 2, "known drafts must not look new");
        let empty = store.with_offer_index("offer_2", |index| index.len()).unwrap();
        assert_eq!(empty, 0);
        assert!(!summary::file_path(dir.path(), "offer_2").exists(), "an offer without entries needs no file");
    }

    /// Stores one shard of `offer_1`'s summaries as format 2 kept them in the `summaries`
    /// tree: packed records of id length, id and the summary's fixed 18 bytes.
    fn insert_shard(store: &Store, shard: u16, records: &[(&str, EntrySummary)]) {
        let mut value = Vec::new();
        for (draft_id, summary) in records {
            value.extend_from_slice(&(draft_id.len() as u16).to_le_bytes());
            value.extend_from_slice(draft_id.as_bytes());
            value.extend_from_slice(&summary.state_hash.to_le_bytes());
            value.extend_from_slice(&i64::from(summary.status_since).to_le_bytes());
            value.push(summary.status.as_byte());
            value.push(u8::from(summary.stuck_announced) | u8::from(summary.has_draft) << 1);
        }
        let mut key = b"offer_1\0".to_vec();
        key.extend_from_slice(&shard.to_be_bytes());
        store.db.open_tree("summaries").unwrap().insert(key, value).unwrap();
    }

    /// Format 2 kept the summaries in a `summaries` tree, one value per shard.
    #[test]
    fn store_moves_summaries_into_files() {
        let dir = tempfile::tempdir().unwrap();
        let kept = EntrySummary::of(&snapshot(DraftStatus::Install, "7"));
        {
            let store = Store::open(dir.path()).unwrap();
            // An entry missing from the shards shows that the summaries were copied, not
            // rebuilt from the entries.
            store
                .drafts
                .insert(draft_key("offer_1", "odft_9"), encode_entry(&snapshot(DraftStatus::Done, "9")))
                .unwrap();
            insert_shard(&store, 17, &[("odft_1", kept)]);
            store.meta.insert("format_version", &2u32.to_be_bytes()).unwrap();
            store.flush().unwrap();
        }

        let store = Store::open(dir.path()).unwrap();
        let index = store.with_offer_index("offer_1", |index| index.clone()).unwrap();
        assert_eq!(index.len(), 1);
        assert_eq!(index[&id_hash("odft_1")], EntrySummary { has_draft: false, ..kept });
        assert!(!store.db.tree_names().iter().any(|name| name == b"summaries"), "the tree is gone");
        assert_eq!(store.meta.get("format_version").unwrap().unwrap().as_ref(), FORMAT_VERSION.to_be_bytes());
    }

    #[test]
    fn damaged_shard_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            for draft_id in ["odft_1", "odft_2"] {
                store
                    .drafts
                    .insert(draft_key("offer_1", draft_id), encode_entry(&snapshot(DraftStatus::Done, "9")))
                    .unwrap();
            }
            insert_shard(&store, 1, &[("odft_1", EntrySummary::of(&snapshot(DraftStatus::Done, "9")))]);
            let mut damaged = b"offer_1\0".to_vec();
            damaged.extend_from_slice(&2u16.to_be_bytes());
            store.db.open_tree("summaries").unwrap().insert(damaged, &[0xff][..]).unwrap();
            store.meta.insert("format_version", &2u32.to_be_bytes()).unwrap();
            store.flush().unwrap();
        }

        let store = Store::open(dir.path()).unwrap();
        assert!(!store.meta.contains_key(stale_key("offer_1")).unwrap(), "opening rebuilt the offer");
        assert_summaries_match(&store, &["odft_1", "odft_2"]);
    }

    #[test]
    fn store_second_open_is_locked() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path()).unwrap();
        let error = Store::open(dir.path()).unwrap_err();
        let text = error.to_string();
        assert!(matches!(error, StoreError::Locked { .. }), "{text}");
        assert!(text.contains(&dir.path().display().to_string()), "{text}");
        assert!(text.contains(&format!("pid {}", std::process::id())), "{text}");
    }

    #[test]
    fn store_refuses_newer_format() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let meta = store.db.open_tree("meta").unwrap();
            meta.insert("format_version", &(FORMAT_VERSION + 1).to_be_bytes()).unwrap();
            store.flush().unwrap();
        }
        let error = Store::open(dir.path()).unwrap_err();
        let text = error.to_string();
        assert!(text.contains(&format!("format {}", FORMAT_VERSION + 1)), "{text}");
        assert!(text.contains(&format!("reads {FORMAT_VERSION}")), "{text}");
    }

    #[cfg(unix)]
    #[test]
    fn store_dir_is_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new-state");
        let _store = Store::open(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn outbox_keeps_detection_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let drafts = (0..3)
            .map(|index| DraftCommit {
                draft_id: format!("odft_{index}"),
                entry: Some(snapshot(DraftStatus::Install, "2")),
                notifications: vec![OutboxEntry::new("sales".into(), notification(&format!("evt_{index}")), 10)],
            })
            .collect();
        store.commit_sweep(SweepCommit { offer_id: "o".into(), drafts, offer_state: None }).unwrap();
        let ids: Vec<String> = store.outbox_entries().unwrap().iter().map(OutboxEntry::id).collect();
        assert_eq!(ids, ["evt_0:sales", "evt_1:sales", "evt_2:sales"]);
    }

    #[test]
    fn removal_drops_entry_with_outbox() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut entry = snapshot(DraftStatus::Payment, "1");
        entry.draft = Some(json!({"id": "odft_1", "status": "payment"}));
        let put = DraftCommit { draft_id: "odft_1".into(), entry: Some(entry.clone()), notifications: vec![] };
        store.commit_sweep(SweepCommit { offer_id: "offer_1".into(), drafts: vec![put], offer_state: None }).unwrap();
        assert_eq!(store.snapshot("offer_1", "odft_1").unwrap(), Some(entry), "the draft object is kept");
        assert_eq!(store.with_offer_index("offer_1", |index| index.len()).unwrap(), 1);
        assert!(store.with_offer_index("offer_1", |index| index[&id_hash("odft_1")].has_draft).unwrap());

        let drop = DraftCommit {
            draft_id: "odft_1".into(),
            entry: None,
            notifications: vec![OutboxEntry::new("sales".into(), notification("evt_gone"), 10)],
        };
        store.commit_sweep(SweepCommit { offer_id: "offer_1".into(), drafts: vec![drop], offer_state: None }).unwrap();
        assert_eq!(store.snapshot("offer_1", "odft_1").unwrap(), None);
        assert_eq!(store.with_offer_index("offer_1", |index| index.len()).unwrap(), 0, "the index follows");
        assert_eq!(store.outbox_entries().unwrap()[0].id(), "evt_gone:sales");
    }

    /// A state of format 2 that still keeps draft objects apart is migrated too.
    #[test]
    fn store_moves_objects_kept_apart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let row = br#"{"etag":"e2","status":"done","termination_reason":null,"offer_id":"offer_1","first_seen":5,"status_since":8,"has_draft":true}"#;
            store.drafts.insert(draft_key("offer_1", "odft_2"), &row[..]).unwrap();
            let objects = store.db.open_tree("draft_objects").unwrap();
            objects.insert(draft_key("offer_1", "odft_2"), &br#"{"id":"odft_2"}"#[..]).unwrap();
            store.flush().unwrap();
        }

        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.snapshot("offer_1", "odft_2").unwrap().unwrap().draft, Some(json!({"id": "odft_2"})));
        assert!(store.with_offer_index("offer_1", |index| index[&id_hash("odft_2")].has_draft).unwrap());
    }

    /// Early builds of format 2 kept both the `summaries` tree and `draft_objects`. There, a
    /// crash between a commit and finish left shards that lack the committed draft and an
    /// offer marked stale.
    #[test]
    fn stale_shards_kept_apart_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let row = br#"{"etag":"e2","status":"done","termination_reason":null,"offer_id":"offer_1","first_seen":5,"status_since":8,"has_draft":true}"#;
        {
            let store = Store::open(dir.path()).unwrap();
            let objects = store.db.open_tree("draft_objects").unwrap();
            for draft_id in ["odft_1", "odft_2"] {
                store.drafts.insert(draft_key("offer_1", draft_id), &row[..]).unwrap();
                objects.insert(draft_key("offer_1", draft_id), &br#"{"id":"odft"}"#[..]).unwrap();
            }
            let mut finished = snapshot(DraftStatus::Done, "e2");
            finished.status_since = 8;
            finished.draft = Some(json!({"id": "odft"}));
            insert_shard(&store, 3, &[("odft_1", EntrySummary::of(&finished))]);
            store.meta.insert(stale_key("offer_1"), &[]).unwrap();
            store.meta.insert("format_version", &2u32.to_be_bytes()).unwrap();
            store.flush().unwrap();
        }

        let store = Store::open(dir.path()).unwrap();
        let index = store.with_offer_index("offer_1", |index| index.clone()).unwrap();
        assert!(index.contains_key(&id_hash("odft_2")), "a committed draft must not look new");
        assert_eq!(index.len(), 2);
    }

    /// Entries and offer states exactly as the first release wrote them, in format 1.
    #[test]
    fn store_reads_first_format_entries() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let old_entry = br#"{"etag":"e1","status":"configure","termination_reason":null,"offer_id":"offer_1","first_seen":5,"status_since":7}"#;
            store.drafts.insert(draft_key("offer_1", "odft_1"), &old_entry[..]).unwrap();
            let with_object = br#"{"etag":"e2","status":"done","termination_reason":null,"offer_id":"offer_1","first_seen":5,"status_since":8,"has_draft":true}"#;
            store.drafts.insert(draft_key("offer_1", "odft_2"), &with_object[..]).unwrap();
            let objects = store.db.open_tree("draft_objects").unwrap();
            objects.insert(draft_key("offer_1", "odft_2"), &br#"{"id":"odft_2","status":"done"}"#[..]).unwrap();
            store.offers.insert("offer_1", &br#"{"baselined_at":5}"#[..]).unwrap();
            store.db.open_tree("meta").unwrap().insert("format_version", &1u32.to_be_bytes()).unwrap();
            store.flush().unwrap();
        }

        let store = Store::open(dir.path()).unwrap();
        let entry = store.snapshot("offer_1", "odft_1").unwrap().unwrap();
        assert_eq!(entry.status, DraftStatus::Configure);
        assert_eq!(entry.status_since, 7);
        assert!(!entry.stuck_announced);
        assert_eq!(entry.draft, None);
        assert_eq!(store.offer_state("offer_1").unwrap(), Some(OfferState { baselined_at: 5, last_full_sweep: None }));
        let summary = store.with_offer_index("offer_1", |index| index[&id_hash("odft_1")]).unwrap();
        assert!(!summary.has_draft);
        assert_eq!(summary.status_since, 7, "the summaries are built from the entries");
        assert_eq!(store.draft_ids("offer_1", &[id_hash("odft_1"), 42]).unwrap(), ["odft_1"]);

        let moved = store.snapshot("offer_1", "odft_2").unwrap().unwrap();
        assert_eq!(moved.draft, Some(json!({"id": "odft_2", "status": "done"})), "the object moved into the row");
        assert!(store.with_offer_index("offer_1", |index| index[&id_hash("odft_2")].has_draft).unwrap());
        assert!(!store.db.tree_names().iter().any(|name| name == b"draft_objects"), "the old tree is gone");
        let meta = store.db.open_tree("meta").unwrap();
        assert_eq!(meta.get("format_version").unwrap().unwrap().as_ref(), FORMAT_VERSION.to_be_bytes());
    }

    /// Format 2 rows are plain JSON: they read as they are, and a change writes them
    /// compressed.
    #[test]
    fn store_reads_second_format_rows() {
        let dir = tempfile::tempdir().unwrap();
        let key = draft_key("offer_1", "odft_1");
        let mut entry = snapshot(DraftStatus::Payment, "e1");
        entry.draft = Some(json!({"id": "odft_1", "status": "payment"}));
        {
            let store = Store::open(dir.path()).unwrap();
            let draft = DraftCommit { draft_id: "odft_1".into(), entry: Some(entry.clone()), notifications: vec![] };
            store
                .commit_sweep(SweepCommit { offer_id: "offer_1".into(), drafts: vec![draft], offer_state: None })
                .unwrap();
            let mut plain = serde_json::to_value(&entry).unwrap();
            plain["draft"] = json!({"id": "odft_1", "status": "payment"});
            store.drafts.insert(&key, serde_json::to_vec(&plain).unwrap()).unwrap();
            store.meta.insert("format_version", &2u32.to_be_bytes()).unwrap();
            store.flush().unwrap();
        }

        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.snapshot("offer_1", "odft_1").unwrap(), Some(entry.clone()));
        assert_eq!(store.meta.get("format_version").unwrap().unwrap().as_ref(), FORMAT_VERSION.to_be_bytes());
        assert_eq!(store.drafts.get(&key).unwrap().unwrap()[0], b'{', "opening rewrites no row");

        entry.status = DraftStatus::Install;
        let draft = DraftCommit { draft_id: "odft_1".into(), entry: Some(entry.clone()), notifications: vec![] };
        store.commit_sweep(SweepCommit { offer_id: "offer_1".into(), drafts: vec![draft], offer_state: None }).unwrap();
        assert_ne!(store.drafts.get(&key).unwrap().unwrap()[0], b'{', "a changed row is compressed");
        assert_eq!(store.snapshot("offer_1", "odft_1").unwrap(), Some(entry));
    }

    /// A format 1 migration that stopped part-way: one object already moved into its row,
    /// one still in `draft_objects`, and the format number not yet raised.
    #[test]
    fn migration_resumes_after_interruption() {
        let dir = tempfile::tempdir().unwrap();
        let moved_object = json!({"id": "odft_1", "status": "done"});
        {
            let store = Store::open(dir.path()).unwrap();
            let mut moved = snapshot(DraftStatus::Done, "e1");
            moved.draft = Some(moved_object.clone());
            store.drafts.insert(draft_key("offer_1", "odft_1"), encode_entry(&moved)).unwrap();
            let waiting = br#"{"etag":"e2","status":"payment","termination_reason":null,"offer_id":"offer_1","first_seen":5,"status_since":8,"has_draft":true}"#;
            store.drafts.insert(draft_key("offer_1", "odft_2"), &waiting[..]).unwrap();
            let objects = store.db.open_tree("draft_objects").unwrap();
            objects.insert(draft_key("offer_1", "odft_2"), &br#"{"id":"odft_2"}"#[..]).unwrap();
            store.meta.insert("format_version", &1u32.to_be_bytes()).unwrap();
            store.flush().unwrap();
        }

        for _ in 0..2 {
            let store = Store::open(dir.path()).unwrap();
            let first = store.snapshot("offer_1", "odft_1").unwrap().unwrap();
            assert_eq!(first.draft, Some(moved_object.clone()), "a moved object stays");
            let second = store.snapshot("offer_1", "odft_2").unwrap().unwrap();
            assert_eq!(second.draft, Some(json!({"id": "odft_2"})), "the remaining object moves");
            let index = store.with_offer_index("offer_1", |index| index.clone()).unwrap();
            assert_eq!(index.len(), 2);
            assert!(index.values().all(|summary| summary.has_draft));
            // The next open finds format 2 and nothing left to move; rolling the number back
            // runs the migration again over rows that are all moved.
            store.meta.insert("format_version", &1u32.to_be_bytes()).unwrap();
            store.flush().unwrap();
        }
    }

    #[test]
    fn summaries_rebuilt_after_unfinished_removal() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            commit_finished(&store, &["odft_1", "odft_2"]);
            remove_one(&store, "odft_1");
            remove_one(&store, "odft_2");
            commit_one(&store, "odft_2", "2");
            // A crash here: the removals are on disk, the summary file still lists both drafts.
            store.flush().unwrap();
        }

        let store = Store::open(dir.path()).unwrap();
        let index = store.with_offer_index("offer_1", |index| index.clone()).unwrap();
        assert_eq!(index.len(), 1);
        assert_eq!(index[&id_hash("odft_2")], EntrySummary::of(&snapshot(DraftStatus::Payment, "2")));
        assert_eq!(store.draft_ids("offer_1", &[id_hash("odft_1"), id_hash("odft_2")]).unwrap(), ["odft_2"]);
    }

    #[test]
    fn store_corrupt_files_name_recovery() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        for entry in fs::read_dir(dir.path().join("db")).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                fs::write(&path, b"\xff\xfe definitely not a sled file \x00\x01").unwrap();
            }
        }

        let error = Store::open(dir.path()).unwrap_err();
        let text = error.to_string();
        assert!(matches!(error, StoreError::Open { .. }), "{text}");
        assert!(text.contains(&dir.path().display().to_string()), "{text}");
        assert!(text.contains("move the directory aside"), "{text}");
    }
}
