//! The transfer id echo: how a CTDR names the identified transfer, and the
//! message of it, that it answers.
//!
//! A CTDR (RFC 4067 §2.5.4) has no room for a Context Data Block: after
//! the header and the MN's address it holds only 4-octet
//! `FPT | Status | Reserved` entries. An *identified transfer* (every CTD
//! or PCTD starts with the TRANSFER block of [`crate::segment`], whose
//! transfer id names the attempt) is answered by CTDRs whose entry list
//! starts with exactly [`ENTRIES`] entries of FPT [`super::fpt::TRANSFER_ID`]
//! (0xFF03). Their Status octets, in order, are:
//!
//! ```text
//! entry 1..4: transfer id, most significant octet first
//! entry 5..6: V (1 bit) | index (15 bits), most significant octet first
//!             V = 1: this CTDR is the verdict of the whole transfer (the
//!                    answer to the message that completed it, or, with
//!                    index 0x7FFF and S = 0, the receiver giving up on it)
//!             V = 0: the answer to message `index` alone
//! ```
//!
//! The Reserved octets stay 0: RFC 4067 reserves them, and codecs (this
//! crate's [`StatusEntry`] among them) neither carry nor keep them. The
//! entries that follow the echo are the CTDR's ordinary per-FPT statuses.
//! A peer that does not know the scheme sees six entries of an FPT it
//! never sent; it only ever receives them in answer to an identified
//! transfer, which only this scheme sends.

use crate::wire::StatusEntry;

/// Entries of one echo.
pub const ENTRIES: usize = 6;
/// The V bit: the CTDR carries the verdict of the whole transfer.
pub const VERDICT: u16 = 0x8000;
/// The index of the receiver's own failure verdict (it gives up on the
/// transfer; the answer to no message in particular).
pub const GIVE_UP: u16 = 0x7FFF;
/// Most messages of an identified transfer (indices 0 to 0x7FFE).
pub const MAX_MESSAGES: usize = GIVE_UP as usize;

/// What a CTDR's echo says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Echo {
    /// The transfer id of the transfer answered.
    pub transfer_id: u32,
    /// The index of the message answered ([`GIVE_UP`] for a give-up).
    pub index: u16,
    /// The CTDR is the verdict of the whole transfer.
    pub verdict: bool,
}

impl Echo {
    /// The answer to message `index` alone.
    pub fn message(transfer_id: u32, index: u16) -> Echo {
        Echo {
            transfer_id,
            index,
            verdict: false,
        }
    }
    /// The verdict, in answer to message `index`.
    pub fn verdict(transfer_id: u32, index: u16) -> Echo {
        Echo {
            transfer_id,
            index,
            verdict: true,
        }
    }
    /// The receiver gives up on the transfer.
    pub fn give_up(transfer_id: u32) -> Echo {
        Echo::verdict(transfer_id, GIVE_UP)
    }
    /// Whether this is a give-up.
    pub fn is_give_up(&self) -> bool {
        self.verdict && self.index == GIVE_UP
    }

    /// The echo's entries under `fpt` (normally
    /// [`super::fpt::TRANSFER_ID`]).
    #[must_use]
    pub fn entries(&self, fpt: u16) -> [StatusEntry; ENTRIES] {
        let id = self.transfer_id.to_be_bytes();
        let v = if self.verdict { VERDICT } else { 0 };
        let vi = ((self.index & !VERDICT) | v).to_be_bytes();
        [id[0], id[1], id[2], id[3], vi[0], vi[1]].map(|status| StatusEntry { fpt, status })
    }

    /// The echo at the head of `entries`, and the entries after it. Without
    /// a well-formed echo (exactly [`ENTRIES`] leading entries of `fpt`)
    /// the echo is `None` and every entry is returned.
    #[must_use]
    pub fn split(fpt: u16, mut entries: Vec<StatusEntry>) -> (Option<Echo>, Vec<StatusEntry>) {
        let lead = entries.iter().take_while(|e| e.fpt == fpt).count();
        if lead != ENTRIES {
            return (None, entries);
        }
        let rest = entries.split_off(ENTRIES);
        let s: Vec<u8> = entries.iter().map(|e| e.status).collect();
        let vi = u16::from_be_bytes([s[4], s[5]]);
        let echo = Echo {
            transfer_id: u32::from_be_bytes([s[0], s[1], s[2], s[3]]),
            index: vi & !VERDICT,
            verdict: vi & VERDICT != 0,
        };
        (Some(echo), rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::fpt::TRANSFER_ID;

    #[test]
    fn round_trip_and_malformed_echoes() {
        let tail = StatusEntry {
            fpt: 0xFF01,
            status: 0xA1,
        };
        for e in [
            Echo::message(0x8000_0001, 0),
            Echo::message(1, 0x7FFE),
            Echo::verdict(0xDEAD_BEEF, 3),
            Echo::give_up(7),
        ] {
            let mut v = e.entries(TRANSFER_ID).to_vec();
            v.push(tail);
            assert_eq!(Echo::split(TRANSFER_ID, v), (Some(e), vec![tail]));
        }
        assert!(Echo::give_up(7).is_give_up());
        assert!(!Echo::verdict(7, 1).is_give_up());
        assert_eq!(
            Echo::verdict(0x0102_0304, 5)
                .entries(TRANSFER_ID)
                .map(|e| e.status),
            [1, 2, 3, 4, 0x80, 5]
        );
        // Too few or too many leading entries, or none: no echo, nothing lost.
        let e = Echo::message(5, 1).entries(TRANSFER_ID);
        for v in [
            e[..5].to_vec(),
            [&e[..], &e[..1]].concat(),
            vec![tail],
            vec![],
        ] {
            assert_eq!(Echo::split(TRANSFER_ID, v.clone()), (None, v));
        }
    }
}
