//! The session journal: what a source eNBC froze and exported, written
//! durably before the frozen sockets are closed, so that a mih-user killed
//! in the middle of a migration can finish it when it restarts.
//!
//! Once a socket is closed in repair mode its state exists only in the
//! memory of the mih-user (and in the CXTP transfer on its way); the UE's
//! packets are held away (the flow hold). A crash there would lose the
//! connection and leave the hold in place. So the export writes one entry
//! per handover attempt **before** the close: the attempt, the UE, the
//! peer, the services, the sessions (their [`TcpSessionContext`]
//! encoding, the bytes the CXTP session context carries) and the hooks
//! that laid and that undo the hold, with a phase marker that follows the
//! migration (exported → sent → committed or rolled back). The entry is
//! removed when the handover ends (the sessions released at the commit or
//! restored at the rollback). A restarted mih-user reads what is left and
//! decides, per entry, with [`decide`].
//!
//! # Files
//!
//! One file per attempt, `ho-<nonce>-<n>.jrnl` in the journal directory
//! (the daemon's `sessions.journal_dir`), mode 0600. The directory holds a
//! `.lock` file (an exclusive `flock`: one mih-user per journal), the
//! `aside/` directory (entries moved out of the way: corrupt ones and ones
//! recovery could not resolve, never deleted) and, only while one is being
//! written, a `.ho-<nonce>-<n>.tmp` file.
//!
//! Layout (big-endian):
//!
//! ```text
//!  0  magic "MIHUJRNL"               8
//!  8  version u8 (1) | record flags u8 | reserved 2    4
//! 12  body length u32                4
//! 16  phase block: phase u8 | flags u8 | reserved u16 | CRC-32C of those 4 octets u32
//! 24  CRC-32C of octets 0..16 and of the body, u32
//! 28  reserved u32                   4
//! 32  body:
//!     created (Unix ms) u64 | handover id u64 | attempt id u32 (0: none)
//!     UE: family u8 (4|6) | 4 or 16 octets
//!     peer MIHF ID: len u16 | UTF-8
//!     services: count u16 | count × (len u16 | UTF-8)
//!     hooks: hold, release, path switch, each: present u8 | len u32 | UTF-8
//!     sessions: count u16 | count × (len u32 | TcpSessionContext encoding)
//! ```
//!
//! Record flags: 0x01 the RAN triggered the handover (X2): a restored UE
//! is moved again (the scheduler's retry). They are covered by the CRC of
//! octets 0..16.
//!
//! Phases: 1 exported, 2 sent, 3 committed, 4 rolled back; flag 0x01 (with
//! rolled back): the destination refused the contexts (failed CTDR or a
//! CTC), so it cannot commit.
//!
//! A destination writes entries too, with the same layout: 5 imported
//! (the sessions rebuilt frozen here, written before the successful CTDR
//! leaves; the peer is the source) and 6 resuming (its commit under way).
//! A restarted destination rebuilds an imported entry's sessions frozen
//! and waits for the source's MIH_N2N_HO_Complete as before the crash; a
//! resuming one it commits at once.
//!
//! # Durability
//!
//! * **create**: the entry goes to the temporary file, which is
//!   `fsync`ed, renamed to its name, and the directory is `fsync`ed. A
//!   crash at any point leaves either no entry or the whole entry (a
//!   leftover temporary file is removed at the next open).
//! * **phase updates** rewrite the 8-octet phase block in place and
//!   `fdatasync` (one sector: the block is the old one or the new one; its
//!   own CRC tells a damaged one).
//! * **remove**: unlink, then `fsync` of the directory.
//!
//! # Bounds
//!
//! At most `max_entries` entries and `max_bytes` octets in total (checked
//! before an entry is written: a refused entry fails the export, and the
//! handover rolls back with the sockets untouched), and every file read
//! back is checked against `max_bytes` before it is read. A file that does
//! not decode is a [`JournalError`] naming it; the scan moves it to
//! `aside/` and goes on (never a panic, never a silent deletion).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use bytes::{BufMut, Bytes, BytesMut};
use cxtp::profile::{FeatureProfile, TcpSessionContext};

/// The first octets of every entry.
pub const MAGIC: &[u8; 8] = b"MIHUJRNL";
/// The format version.
pub const VERSION: u8 = 1;
/// Record flag: the RAN (X2) triggered the handover.
const RECORD_X2: u8 = 0x01;
/// Octets before the body.
pub const HEADER_LEN: usize = 32;
/// Where the phase block sits.
const PHASE_AT: u64 = 16;
/// Flag of the phase block: the destination refused the contexts.
const FLAG_PEER_REFUSED: u8 = 0x01;
/// Entry files end with this.
const SUFFIX: &str = ".jrnl";
/// The directory entries are moved to.
pub const ASIDE: &str = "aside";
/// Most services and sessions in one entry.
const MAX_LIST: usize = u16::MAX as usize;

/// Where an exported attempt stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Phase {
    /// Frozen and read; the sockets are closed right after the entry is
    /// durable. Nothing has left this host.
    Exported = 1,
    /// The contexts are (about to be) on their way to the destination:
    /// written before the first CTD leaves.
    Sent = 2,
    /// The source committed (a successful CTDR): written before the
    /// services are told and before MIH_N2N_HO_Complete(Success) leaves.
    Committed = 3,
    /// The source rolled back: written before the sessions are rebuilt.
    RolledBack = 4,
    /// Destination: the contexts arrived and the sessions are rebuilt here
    /// in repair mode (frozen); written before the successful CTDR leaves.
    /// The source may commit from then on, so these sessions must outlive
    /// a crash until the attempt ends.
    Imported = 5,
    /// Destination: the commit is under way (the source committed, or the
    /// complete timeout passed); written before the path switch and the
    /// sockets' leaving repair mode.
    Resuming = 6,
}

impl Phase {
    fn from_u8(v: u8) -> Option<Phase> {
        Some(match v {
            1 => Phase::Exported,
            2 => Phase::Sent,
            3 => Phase::Committed,
            4 => Phase::RolledBack,
            5 => Phase::Imported,
            6 => Phase::Resuming,
            _ => return None,
        })
    }

    /// Name for logs.
    pub fn label(self) -> &'static str {
        match self {
            Phase::Exported => "exported",
            Phase::Sent => "sent",
            Phase::Committed => "committed",
            Phase::RolledBack => "rolled_back",
            Phase::Imported => "imported",
            Phase::Resuming => "resuming",
        }
    }

    /// Whether the entry is a destination's (an incoming attempt), which
    /// [`decide`] does not cover: see `Imported` and `Resuming`.
    pub fn is_incoming(self) -> bool {
        matches!(self, Phase::Imported | Phase::Resuming)
    }
}

/// The hooks around the attempt, as the exporter describes them (opaque
/// text here; the daemon writes its `[sessions]` hook configuration as
/// JSON): what laid the hold, and what undoes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HookSpecs {
    /// The flow hold that was laid.
    pub hold: Option<String>,
    /// The release hook (ends the hold without moving the path).
    pub release: Option<String>,
    /// The path switch (makes the UE's path lead to this host).
    pub path_switch: Option<String>,
}

/// What an entry says about one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// When the entry was made (Unix time, ms).
    pub created_unix_ms: u64,
    /// The handover's id in the process that wrote it.
    pub handover_id: u64,
    /// The on-wire attempt id (MIH vendor TLV kind 3, CXTP transfer id).
    pub attempt: Option<NonZeroU32>,
    /// The UE.
    pub ue: IpAddr,
    /// The other eNBC's MIHF ID (the destination's; in a destination's
    /// entry, the source's).
    pub peer: String,
    /// The services that exported the UE (a destination's entry: none).
    pub services: Vec<String>,
    /// The hold and how to undo it.
    pub hooks: HookSpecs,
    /// The exported (at a destination: the imported) sessions.
    pub sessions: Vec<TcpSessionContext>,
    /// The RAN triggered the handover (X2): after a restore at a restart,
    /// the migration is retried as after any rollback.
    pub x2_trigger: bool,
}

/// An entry read back: its record and where it stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its file name.
    pub name: String,
    /// What it says.
    pub record: Record,
    /// The last phase written.
    pub phase: Phase,
    /// Rolled back because the destination refused the contexts.
    pub peer_refused: bool,
}

/// Why a journal operation failed. Every variant names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// A system call failed.
    #[error("{}: {op}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was done.
        op: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// An entry that does not decode (bad magic, version, checksum or
    /// field).
    #[error("{}: corrupt journal entry: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An entry shorter than its header says.
    #[error("{}: truncated journal entry: {found} of {expected} octets", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Octets the header announces.
        expected: u64,
        /// Octets present.
        found: u64,
    },
    /// An entry over `max_bytes` (written or read).
    #[error("{}: journal entry of {len} octets over the limit of {max}", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// The journal holds `max_entries` entries or `max_bytes` octets.
    #[error("{}: journal full ({entries} entries, {bytes} octets; limits {max_entries} entries, {max_bytes} octets)", path.display())]
    Full {
        /// The directory.
        path: PathBuf,
        /// Entries held.
        entries: usize,
        /// Octets held.
        bytes: u64,
        /// The entry limit.
        max_entries: usize,
        /// The size limit.
        max_bytes: u64,
    },
    /// Another process holds the journal's lock.
    #[error("{}: the journal is in use by another mih-user (lock held)", path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
}

impl JournalError {
    /// Whether the error is about the content of an entry (moved aside).
    pub fn is_bad_entry(&self) -> bool {
        matches!(
            self,
            JournalError::Corrupt { .. }
                | JournalError::Truncated { .. }
                | JournalError::TooLarge { .. }
        )
    }
}

fn io_at<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(io::Error) -> JournalError + 'a {
    move |source| JournalError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

type Result<T, E = JournalError> = std::result::Result<T, E>;

/// Limits of a [`Journal`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalConfig {
    /// The directory (created, mode 0700, if missing).
    pub dir: PathBuf,
    /// Most entries at once.
    pub max_entries: usize,
    /// Most octets in all entries together (and so in one).
    pub max_bytes: u64,
}

impl JournalConfig {
    /// `dir` with the default limits (1024 entries, 256 MiB).
    pub fn new(dir: impl Into<PathBuf>) -> JournalConfig {
        JournalConfig {
            dir: dir.into(),
            max_entries: 1024,
            max_bytes: 256 << 20,
        }
    }
}

// ------------------------------------------------------------ CRC-32C

/// CRC-32C (Castagnoli) of the concatenation of `parts`.
fn crc32c(parts: &[&[u8]]) -> u32 {
    parts.iter().fold(0, |c, p| crc32c::crc32c_append(c, p))
}

// ----------------------------------------------------------- encoding

fn phase_block(phase: Phase, peer_refused: bool) -> [u8; 8] {
    let flags = if peer_refused { FLAG_PEER_REFUSED } else { 0 };
    let head = [phase as u8, flags, 0, 0];
    let c = crc32c(&[&head]).to_be_bytes();
    [head[0], head[1], 0, 0, c[0], c[1], c[2], c[3]]
}

fn put_str16(b: &mut BytesMut, s: &str, what: &str) -> std::result::Result<(), String> {
    let n = u16::try_from(s.len()).map_err(|_| format!("{what} longer than 65535 octets"))?;
    b.put_u16(n);
    b.put_slice(s.as_bytes());
    Ok(())
}

/// The whole file of an entry.
pub fn encode(
    rec: &Record,
    phase: Phase,
    peer_refused: bool,
) -> std::result::Result<Bytes, String> {
    if rec.services.len() > MAX_LIST || rec.sessions.len() > MAX_LIST {
        return Err("more than 65535 services or sessions".into());
    }
    let sessions: Vec<Bytes> = rec.sessions.iter().map(|s| s.encode().1).collect();
    let mut body = BytesMut::with_capacity(
        128 + rec.peer.len() + sessions.iter().map(|s| s.len() + 4).sum::<usize>(),
    );
    body.put_u64(rec.created_unix_ms);
    body.put_u64(rec.handover_id);
    body.put_u32(rec.attempt.map_or(0, NonZeroU32::get));
    match rec.ue {
        IpAddr::V4(a) => {
            body.put_u8(4);
            body.put_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            body.put_u8(6);
            body.put_slice(&a.octets());
        }
    }
    put_str16(&mut body, &rec.peer, "peer")?;
    body.put_u16(rec.services.len() as u16);
    for s in &rec.services {
        put_str16(&mut body, s, "service ID")?;
    }
    for h in [&rec.hooks.hold, &rec.hooks.release, &rec.hooks.path_switch] {
        match h {
            None => body.put_u8(0),
            Some(t) => {
                body.put_u8(1);
                let n = u32::try_from(t.len()).map_err(|_| "hook text too long".to_string())?;
                body.put_u32(n);
                body.put_slice(t.as_bytes());
            }
        }
    }
    body.put_u16(sessions.len() as u16);
    for s in &sessions {
        let n = u32::try_from(s.len()).map_err(|_| "session too long".to_string())?;
        body.put_u32(n);
        body.put_slice(s);
    }
    let body_len = u32::try_from(body.len()).map_err(|_| "entry over 4 GiB".to_string())?;
    let mut head = [0u8; 16];
    head[..8].copy_from_slice(MAGIC);
    head[8] = VERSION;
    head[9] = if rec.x2_trigger { RECORD_X2 } else { 0 };
    head[12..16].copy_from_slice(&body_len.to_be_bytes());
    let mut out = BytesMut::with_capacity(HEADER_LEN + body.len());
    out.put_slice(&head);
    out.put_slice(&phase_block(phase, peer_refused));
    out.put_u32(crc32c(&[&head, &body]));
    out.put_u32(0);
    out.put_slice(&body);
    Ok(out.freeze())
}

/// A reader over the body that names what is missing.
struct Cur<'a> {
    b: &'a Bytes,
    at: usize,
}

impl Cur<'_> {
    fn take(&mut self, n: usize, what: &str) -> std::result::Result<Bytes, String> {
        if self.b.len() - self.at < n {
            return Err(format!(
                "{what}: {n} octets needed, {} left",
                self.b.len() - self.at
            ));
        }
        let v = self.b.slice(self.at..self.at + n);
        self.at += n;
        Ok(v)
    }
    fn u8(&mut self, what: &str) -> std::result::Result<u8, String> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &str) -> std::result::Result<u16, String> {
        let v = self.take(2, what)?;
        Ok(u16::from_be_bytes([v[0], v[1]]))
    }
    fn u32(&mut self, what: &str) -> std::result::Result<u32, String> {
        let v = self.take(4, what)?;
        Ok(u32::from_be_bytes([v[0], v[1], v[2], v[3]]))
    }
    fn u64(&mut self, what: &str) -> std::result::Result<u64, String> {
        let v = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(&v);
        Ok(u64::from_be_bytes(a))
    }
    fn text(&mut self, n: usize, what: &str) -> std::result::Result<String, String> {
        let v = self.take(n, what)?;
        String::from_utf8(v.to_vec()).map_err(|_| format!("{what}: not UTF-8"))
    }
}

/// Decode a whole file (`path` only names it in errors).
pub fn decode(path: &Path, file: Bytes) -> Result<Entry> {
    let corrupt = |reason: String| JournalError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    if file.len() < HEADER_LEN {
        if file.len() >= 8 && &file[..8] != MAGIC {
            return Err(corrupt("bad magic".into()));
        }
        return Err(JournalError::Truncated {
            path: path.to_path_buf(),
            expected: HEADER_LEN as u64,
            found: file.len() as u64,
        });
    }
    if &file[..8] != MAGIC {
        return Err(corrupt("bad magic".into()));
    }
    if file[8] != VERSION {
        return Err(corrupt(format!(
            "version {} (this build reads {VERSION})",
            file[8]
        )));
    }
    let body_len = u32::from_be_bytes([file[12], file[13], file[14], file[15]]) as usize;
    let expected = (HEADER_LEN + body_len) as u64;
    if (file.len() as u64) < expected {
        return Err(JournalError::Truncated {
            path: path.to_path_buf(),
            expected,
            found: file.len() as u64,
        });
    }
    if file.len() as u64 > expected {
        return Err(corrupt(format!(
            "{} octets after the entry",
            file.len() as u64 - expected
        )));
    }
    if file[28..32] != [0; 4] {
        return Err(corrupt("reserved header octets set".into()));
    }
    let pb = &file[16..24];
    let want = u32::from_be_bytes([pb[4], pb[5], pb[6], pb[7]]);
    if crc32c(&[&pb[..4]]) != want {
        return Err(corrupt("phase block checksum mismatch".into()));
    }
    let phase = Phase::from_u8(pb[0]).ok_or_else(|| corrupt(format!("phase {}", pb[0])))?;
    if pb[1] & !FLAG_PEER_REFUSED != 0 || pb[2] != 0 || pb[3] != 0 {
        return Err(corrupt("reserved phase bits set".into()));
    }
    let body = file.slice(HEADER_LEN..);
    let sum = u32::from_be_bytes([file[24], file[25], file[26], file[27]]);
    if crc32c(&[&file[..16], &body]) != sum {
        return Err(corrupt("checksum mismatch".into()));
    }
    if file[9] & !RECORD_X2 != 0 {
        return Err(corrupt(format!("record flags {:#04x}", file[9])));
    }
    let mut record = decode_body(&body).map_err(corrupt)?;
    record.x2_trigger = file[9] & RECORD_X2 != 0;
    Ok(Entry {
        name: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        record,
        phase,
        peer_refused: pb[1] & FLAG_PEER_REFUSED != 0,
    })
}

fn decode_body(body: &Bytes) -> std::result::Result<Record, String> {
    let mut c = Cur { b: body, at: 0 };
    let created_unix_ms = c.u64("created")?;
    let handover_id = c.u64("handover id")?;
    let attempt = NonZeroU32::new(c.u32("attempt id")?);
    let ue = match c.u8("UE family")? {
        4 => {
            let a = c.take(4, "UE address")?;
            IpAddr::from([a[0], a[1], a[2], a[3]])
        }
        6 => {
            let a = c.take(16, "UE address")?;
            let mut o = [0u8; 16];
            o.copy_from_slice(&a);
            IpAddr::from(o)
        }
        f => return Err(format!("UE family {f}")),
    };
    let n = c.u16("peer length")?;
    let peer = c.text(usize::from(n), "peer")?;
    let count = c.u16("service count")?;
    let mut services = Vec::with_capacity(usize::from(count).min(64));
    for _ in 0..count {
        let n = c.u16("service length")?;
        services.push(c.text(usize::from(n), "service ID")?);
    }
    let mut hooks = [None, None, None];
    for (h, what) in hooks.iter_mut().zip(["hold", "release", "path switch"]) {
        match c.u8(what)? {
            0 => {}
            1 => {
                let n = c.u32(what)? as usize;
                *h = Some(c.text(n, what)?);
            }
            v => return Err(format!("{what}: presence {v}")),
        }
    }
    let [hold, release, path_switch] = hooks;
    let count = c.u16("session count")?;
    let mut sessions = Vec::with_capacity(usize::from(count).min(64));
    for i in 0..count {
        let n = c.u32("session length")? as usize;
        let data = c.take(n, "session")?;
        let s = TcpSessionContext::decode(None, &data).map_err(|e| format!("session {i}: {e}"))?;
        sessions.push(s);
    }
    if c.at != body.len() {
        return Err(format!("{} octets after the sessions", body.len() - c.at));
    }
    Ok(Record {
        created_unix_ms,
        handover_id,
        attempt,
        ue,
        peer,
        services,
        hooks: HookSpecs {
            hold,
            release,
            path_switch,
        },
        sessions,
        x2_trigger: false,
    })
}

// ------------------------------------------------------------ journal

#[derive(Debug, Default)]
struct Usage {
    entries: usize,
    bytes: u64,
}

/// The journal directory of one mih-user (see the module documentation).
#[derive(Debug)]
pub struct Journal {
    cfg: JournalConfig,
    /// The `.lock` file, locked for the journal's life.
    _lock: File,
    usage: Mutex<Usage>,
    /// Makes this process's file names differ from an earlier one's.
    nonce: u64,
    next: AtomicU64,
}

/// An entry written by this process (or found at the scan): update its
/// phase, then remove it through the [`Journal`].
#[derive(Debug)]
pub struct EntryHandle {
    name: String,
    path: PathBuf,
    file: File,
    len: u64,
    phase: Phase,
}

impl EntryHandle {
    /// Its file name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The last phase written.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Write a new phase (in place, then `fdatasync`).
    pub fn set_phase(&mut self, phase: Phase, peer_refused: bool) -> Result<()> {
        self.file
            .write_all_at(&phase_block(phase, peer_refused), PHASE_AT)
            .map_err(io_at(&self.path, "write phase"))?;
        self.file
            .sync_data()
            .map_err(io_at(&self.path, "fdatasync"))?;
        self.phase = phase;
        Ok(())
    }
}

/// What [`Journal::open`] found.
#[derive(Debug, Default)]
pub struct Scan {
    /// The entries left by an earlier process, oldest first.
    pub entries: Vec<(Entry, EntryHandle)>,
    /// Entries that did not decode (each moved to `aside/`; the error
    /// names the file as it was).
    pub bad: Vec<JournalError>,
    /// Entries left in place because the scan reached `max_entries` or
    /// `max_bytes` (they are read at the next start).
    pub over_cap: Vec<PathBuf>,
    /// Temporary files of an interrupted write, removed.
    pub removed_temp: usize,
}

fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir, "fsync directory"))
}

fn nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// Unix time now, in ms.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Journal {
    /// Open (create) the journal directory, take its lock, remove the
    /// temporary files of an interrupted write and read the entries left
    /// by an earlier process (bad ones moved to `aside/`).
    pub fn open(cfg: JournalConfig) -> Result<(Journal, Scan)> {
        let dir = cfg.dir.clone();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io_at(&dir, "create directory"))?;
        let lock_path = dir.join(".lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(io_at(&lock_path, "open"))?;
        // A child forked by the previous holder keeps the lock's open file
        // description until it execs (close-on-exec), so a lock that was
        // just released may still read as held for a moment: retry for up
        // to a second before calling it another process's.
        let mut tries = 0;
        loop {
            // SAFETY: flock on a descriptor we own; no memory is involved.
            if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                break;
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(io_at(&lock_path, "flock")(e));
            }
            tries += 1;
            if tries >= 50 {
                return Err(JournalError::Locked { path: lock_path });
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let j = Journal {
            cfg,
            _lock: lock,
            usage: Mutex::new(Usage::default()),
            nonce: nonce(),
            next: AtomicU64::new(1),
        };
        let scan = j.scan()?;
        Ok((j, scan))
    }

    /// The configuration.
    pub fn config(&self) -> &JournalConfig {
        &self.cfg
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.cfg.dir
    }

    fn usage(&self) -> MutexGuard<'_, Usage> {
        self.usage.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Entries held and their octets.
    pub fn held(&self) -> (usize, u64) {
        let u = self.usage();
        (u.entries, u.bytes)
    }

    fn scan(&self) -> Result<Scan> {
        let dir = &self.cfg.dir;
        let mut scan = Scan::default();
        let mut names = Vec::new();
        for d in fs::read_dir(dir).map_err(io_at(dir, "read directory"))? {
            let d = d.map_err(io_at(dir, "read directory"))?;
            let name = d.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.ends_with(".tmp") {
                let p = d.path();
                fs::remove_file(&p).map_err(io_at(&p, "remove temporary file"))?;
                scan.removed_temp += 1;
            } else if name.ends_with(SUFFIX) {
                names.push(name);
            }
        }
        if scan.removed_temp > 0 {
            fsync_dir(dir)?;
        }
        // Oldest first: the names carry no order, the creation time does.
        let mut found = Vec::new();
        for name in names {
            let path = dir.join(&name);
            match self.read_one(&path) {
                Ok((entry, file, len)) => found.push((entry, file, len)),
                Err(e) if e.is_bad_entry() => {
                    self.move_aside_path(&path, "corrupt")?;
                    scan.bad.push(e);
                }
                Err(e) => return Err(e),
            }
        }
        found.sort_by_key(|(e, _, _)| (e.record.created_unix_ms, e.name.clone()));
        let mut u = self.usage();
        for (entry, file, len) in found {
            let path = dir.join(&entry.name);
            if u.entries >= self.cfg.max_entries || u.bytes + len > self.cfg.max_bytes {
                scan.over_cap.push(path);
                continue;
            }
            u.entries += 1;
            u.bytes += len;
            let handle = EntryHandle {
                name: entry.name.clone(),
                path,
                file,
                len,
                phase: entry.phase,
            };
            scan.entries.push((entry, handle));
        }
        Ok(scan)
    }

    fn read_one(&self, path: &Path) -> Result<(Entry, File, u64)> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io_at(path, "open"))?;
        let len = file.metadata().map_err(io_at(path, "stat"))?.len();
        if len > self.cfg.max_bytes {
            return Err(JournalError::TooLarge {
                path: path.to_path_buf(),
                len,
                max: self.cfg.max_bytes,
            });
        }
        let mut buf = Vec::with_capacity(len as usize);
        file.read_to_end(&mut buf).map_err(io_at(path, "read"))?;
        let entry = decode(path, Bytes::from(buf))?;
        Ok((entry, file, len))
    }

    /// Write a new entry durably (temporary file, `fsync`, rename,
    /// directory `fsync`). Refused when it would pass `max_entries` or
    /// `max_bytes`.
    pub fn create(&self, rec: &Record, phase: Phase) -> Result<EntryHandle> {
        let (tmp, path, name, file, len) = self.write_temp(rec, phase)?;
        if let Err(e) = fs::rename(&tmp, &path) {
            let _ = fs::remove_file(&tmp);
            self.unreserve(len);
            return Err(io_at(&path, "rename")(e));
        }
        if let Err(e) = fsync_dir(&self.cfg.dir) {
            // Not known to be durable: do not pretend it is.
            let _ = fs::remove_file(&path);
            self.unreserve(len);
            return Err(e);
        }
        Ok(EntryHandle {
            name,
            path,
            file,
            len,
            phase,
        })
    }

    fn unreserve(&self, len: u64) {
        let mut u = self.usage();
        u.entries = u.entries.saturating_sub(1);
        u.bytes = u.bytes.saturating_sub(len);
    }

    /// The first half of [`Journal::create`]: the temporary file, written
    /// and `fsync`ed, its space reserved. Returns (temporary path, final
    /// path, name, file, length).
    fn write_temp(
        &self,
        rec: &Record,
        phase: Phase,
    ) -> Result<(PathBuf, PathBuf, String, File, u64)> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let stem = format!("ho-{:016x}-{n}", self.nonce);
        let name = format!("{stem}{SUFFIX}");
        let path = self.cfg.dir.join(&name);
        let tmp = self.cfg.dir.join(format!(".{stem}.tmp"));
        let bytes = encode(rec, phase, false).map_err(|reason| JournalError::Corrupt {
            path: path.clone(),
            reason: format!("cannot encode: {reason}"),
        })?;
        let len = bytes.len() as u64;
        {
            let mut u = self.usage();
            if len > self.cfg.max_bytes {
                return Err(JournalError::TooLarge {
                    path,
                    len,
                    max: self.cfg.max_bytes,
                });
            }
            if u.entries >= self.cfg.max_entries || u.bytes + len > self.cfg.max_bytes {
                return Err(JournalError::Full {
                    path: self.cfg.dir.clone(),
                    entries: u.entries,
                    bytes: u.bytes,
                    max_entries: self.cfg.max_entries,
                    max_bytes: self.cfg.max_bytes,
                });
            }
            u.entries += 1;
            u.bytes += len;
        }
        let written = (|| {
            let mut f = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io_at(&tmp, "create"))?;
            f.write_all(&bytes).map_err(io_at(&tmp, "write"))?;
            f.sync_all().map_err(io_at(&tmp, "fsync"))?;
            Ok(f)
        })();
        match written {
            Ok(f) => Ok((tmp, path, name, f, len)),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                self.unreserve(len);
                Err(e)
            }
        }
    }

    /// Remove an entry (unlink, directory `fsync`): its handover ended.
    pub fn remove(&self, h: EntryHandle) -> Result<()> {
        fs::remove_file(&h.path).map_err(io_at(&h.path, "remove"))?;
        self.unreserve(h.len);
        fsync_dir(&self.cfg.dir)
    }

    /// Move an entry to `aside/<why>-<name>` (kept for the operator, no
    /// longer counted or read at start). Returns the new path.
    pub fn move_aside(&self, h: EntryHandle, why: &str) -> Result<PathBuf> {
        let to = self.move_aside_path(&h.path, why)?;
        self.unreserve(h.len);
        Ok(to)
    }

    fn move_aside_path(&self, path: &Path, why: &str) -> Result<PathBuf> {
        let aside = self.cfg.dir.join(ASIDE);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&aside)
            .map_err(io_at(&aside, "create directory"))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut to = aside.join(format!("{why}-{name}"));
        let mut i = 1;
        while to.exists() {
            to = aside.join(format!("{why}-{name}.{i}"));
            i += 1;
        }
        fs::rename(path, &to).map_err(io_at(path, "move aside"))?;
        fsync_dir(&aside)?;
        fsync_dir(&self.cfg.dir)?;
        Ok(to)
    }
}

// ----------------------------------------------------------- recovery

/// What the destination said it did with an attempt (its answer to
/// MIH_N2N_HO_Complete(Failure): the vendor TLV kind 4 of the response).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerAnswer {
    /// It committed the attempt (it serves the UE).
    Committed,
    /// It rolled the attempt back (also: it was under way and the query,
    /// a Complete(Failure), rolled it back).
    RolledBack,
    /// It does not know the attempt (restarted, or forgotten): it cannot
    /// vouch for either.
    Unknown,
}

/// What a restarted source does with an unfinished entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The source had committed: finish the commit's clean-up (release
    /// hook, services told committed, Complete(Success) again), remove.
    FinishCommit,
    /// The destination committed: drop the state (release hook, services
    /// told committed; no path switch: the path is the destination's),
    /// remove.
    PeerCommitted,
    /// Restore at the source as a rollback does: rebuild the sessions (the
    /// path switch back here runs before they leave repair mode), hand
    /// them to the services, tell them the UE stays, remove.
    Restore,
    /// Ask the destination (again) and wait.
    Ask,
    /// The destination may have committed and cannot tell: do not
    /// restore; end the hold without taking the path back, keep the entry
    /// aside for the operator.
    Unresolved,
}

/// The recovery rule for one entry (sans-IO): its `phase` (and whether the
/// destination refused the contexts), the destination's `answer` so far,
/// and whether the wait for an answer is over.
///
/// The destination commits only on MIH_N2N_HO_Complete(Success) or at its
/// complete timeout after a successful CTDR. The source sends the Success
/// only after its entry says committed, and the contexts (without which no
/// CTDR succeeds) only after it says sent. So:
///
/// 1. committed → the source committed: [`Decision::FinishCommit`];
/// 2. exported → nothing left this host, the destination cannot commit:
///    [`Decision::Restore`] (the query still tells it to stop waiting);
/// 3. rolled back after the destination refused (failed CTDR, CTC) → it
///    ended the attempt itself: [`Decision::Restore`];
/// 4. otherwise the destination's answer decides: committed →
///    [`Decision::PeerCommitted`], rolled back → [`Decision::Restore`] (an
///    attempt still under way there is rolled back by the query itself,
///    before it answers, and an ended one never commits later);
/// 5. unknown (it restarted or forgot), or no answer once the wait is
///    over → [`Decision::Unresolved`]: it may have committed at its
///    timeout, so restoring could make both ends serve the session; before
///    that, [`Decision::Ask`].
pub fn decide(
    phase: Phase,
    peer_refused: bool,
    answer: Option<PeerAnswer>,
    wait_over: bool,
) -> Decision {
    match (phase, answer) {
        (Phase::Committed, _) => Decision::FinishCommit,
        // A destination's entry: not a source's decision (the daemon
        // recovers those before anything runs); never restored here.
        (Phase::Imported | Phase::Resuming, _) => Decision::Unresolved,
        (Phase::Exported, _) => Decision::Restore,
        (Phase::RolledBack, _) if peer_refused => Decision::Restore,
        (_, Some(PeerAnswer::Committed)) => Decision::PeerCommitted,
        (_, Some(PeerAnswer::RolledBack)) => Decision::Restore,
        (_, Some(PeerAnswer::Unknown)) => Decision::Unresolved,
        (_, None) if wait_over => Decision::Unresolved,
        (_, None) => Decision::Ask,
    }
}

/// Test support: `MIH_USER_TEST_KILL_AT=<point>` makes the process SIGKILL
/// itself when it reaches `point` (`exported`: the entry is durable, the
/// sockets still frozen; `sent`: the sent marker is durable, the first CTD
/// not yet sent; `before_commit`: the successful CTDR arrived, nothing of
/// the commit done; `committed`: the committed marker is durable, the
/// services not told and the Complete not sent; `import`: at a
/// destination, the contexts arrived, the sessions not rebuilt and no
/// CTDR sent; `imported`: at a destination, the sessions rebuilt frozen
/// and their entry durable, no CTDR sent; `dest_commit`: at a
/// destination, its commit begins (the CTDR is out, the source
/// committed), the entry still says imported; `resuming`: the resuming
/// marker is durable, the path not switched). For crash tests only.
pub fn kill_point(point: &str) {
    static AT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let at = AT.get_or_init(|| std::env::var("MIH_USER_TEST_KILL_AT").ok());
    if at.as_deref() == Some(point) {
        // SAFETY: signalling ourselves; the process ends here.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests;
