//! Mapping tables: target cell/eNB → destination eNBC, UE → IP address.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::pdu::{Ecgi, Plmn};

/// Why a table refused an entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// The table holds its configured maximum of entries.
    #[error("{table} table is full ({capacity} entries)")]
    Full {
        /// `neighbour` or `UE`.
        table: &'static str,
        /// Its capacity.
        capacity: usize,
    },
    /// A PLMN that is neither `MCC-MNC` nor six hex digits.
    #[error("bad PLMN {0:?}: expected \"MCC-MNC\" (e.g. \"001-01\") or six hex digits")]
    BadPlmn(String),
    /// A neighbour entry that is not exactly one of `cell_id` / `enb_id`, or out of range.
    #[error("bad neighbour entry: {0}")]
    BadNeighbour(String),
    /// A UE entry without a key.
    #[error("bad UE entry: {0}")]
    BadUe(String),
}

/// What a neighbour entry matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TargetKey {
    /// One cell (ECGI).
    Cell(Ecgi),
    /// Every cell of one eNB: the leftmost `bits` bits of the 28-bit cell
    /// identity (20 for a macro eNB, 18 short macro, 21 long macro, 28 home).
    Enb {
        /// PLMN of the cells.
        plmn: Plmn,
        /// eNB ID.
        enb_id: u32,
        /// Length of the eNB ID in bits (1..=28).
        bits: u8,
    },
}

impl TargetKey {
    /// A macro eNB (20-bit eNB ID).
    pub fn macro_enb(plmn: Plmn, enb_id: u32) -> TargetKey {
        TargetKey::Enb {
            plmn,
            enb_id,
            bits: 20,
        }
    }

    fn check(&self) -> Result<(), TableError> {
        match *self {
            TargetKey::Cell(e) if e.cell_id > 0x0fff_ffff => Err(TableError::BadNeighbour(
                format!("cell_id {:#x} does not fit 28 bits", e.cell_id),
            )),
            TargetKey::Enb { bits, .. } if !(1..=28).contains(&bits) => Err(
                TableError::BadNeighbour(format!("enb_id_bits {bits} is not 1..=28")),
            ),
            TargetKey::Enb { enb_id, bits, .. } if u64::from(enb_id) >> bits != 0 => Err(
                TableError::BadNeighbour(format!("enb_id {enb_id:#x} does not fit {bits} bits")),
            ),
            _ => Ok(()),
        }
    }
}

/// One neighbour in the configuration: a cell or an eNB, and the MIHF ID of
/// the eNBC that serves it.
///
/// ```toml
/// [[neighbours]]
/// plmn = "001-01"        # or the three octets in hex: "00f110"
/// enb_id = 0x1a2b3       # macro eNB ID (enb_id_bits = 20 by default) ...
/// mihf_id = "enbc-b"
///
/// [[neighbours]]
/// plmn = "001-01"
/// cell_id = 0x1a2b402    # ... or one 28-bit E-UTRAN cell identity
/// mihf_id = "enbc-c"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeighbourConfig {
    /// PLMN: `"MCC-MNC"` or six hex digits of the TBCD octets.
    pub plmn: String,
    /// 28-bit E-UTRAN cell identity (exactly one of `cell_id`, `enb_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cell_id: Option<u32>,
    /// eNB ID (exactly one of `cell_id`, `enb_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enb_id: Option<u32>,
    /// Length of `enb_id` in bits (default 20, a macro eNB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enb_id_bits: Option<u8>,
    /// MIHF ID of the eNBC next to the target eNB.
    pub mihf_id: String,
}

impl NeighbourConfig {
    /// The table key this entry stands for.
    pub fn key(&self) -> Result<TargetKey, TableError> {
        let plmn = Plmn::parse(&self.plmn).ok_or_else(|| TableError::BadPlmn(self.plmn.clone()))?;
        let key = match (self.cell_id, self.enb_id) {
            (Some(cell_id), None) => {
                if self.enb_id_bits.is_some() {
                    return Err(TableError::BadNeighbour(
                        "enb_id_bits given with cell_id".into(),
                    ));
                }
                TargetKey::Cell(Ecgi { plmn, cell_id })
            }
            (None, Some(enb_id)) => TargetKey::Enb {
                plmn,
                enb_id,
                bits: self.enb_id_bits.unwrap_or(20),
            },
            _ => {
                return Err(TableError::BadNeighbour(format!(
                    "{}: give exactly one of cell_id and enb_id",
                    self.mihf_id
                )))
            }
        };
        key.check()?;
        if self.mihf_id.is_empty() {
            return Err(TableError::BadNeighbour("empty mihf_id".into()));
        }
        Ok(key)
    }
}

/// Target cell → MIHF ID of the destination eNBC.
///
/// A cell entry wins over an eNB entry; among eNB entries the longest eNB ID
/// wins (a home eNB inside a macro's range).
///
/// ```
/// use mih_user::x2ap::{Ecgi, NeighbourTable, Plmn, TargetKey};
/// let plmn = Plmn::parse("001-01").unwrap();
/// let mut t = NeighbourTable::new(16);
/// t.insert(TargetKey::macro_enb(plmn, 0x1a2b3), "enbc-b").unwrap();
/// t.insert(TargetKey::Cell(Ecgi { plmn, cell_id: 0x1a2b3ff }), "enbc-x").unwrap();
/// assert_eq!(t.resolve(&Ecgi { plmn, cell_id: 0x1a2b301 }), Some("enbc-b"));
/// assert_eq!(t.resolve(&Ecgi { plmn, cell_id: 0x1a2b3ff }), Some("enbc-x"));
/// assert_eq!(t.resolve(&Ecgi { plmn, cell_id: 0x0000001 }), None);
/// ```
#[derive(Debug, Clone)]
pub struct NeighbourTable {
    entries: BTreeMap<TargetKey, String>,
    /// eNB ID lengths in use, longest first when iterated in reverse.
    enb_bits: BTreeSet<u8>,
    capacity: usize,
}

impl NeighbourTable {
    /// An empty table holding at most `capacity` entries.
    pub fn new(capacity: usize) -> NeighbourTable {
        NeighbourTable {
            entries: BTreeMap::new(),
            enb_bits: BTreeSet::new(),
            capacity,
        }
    }

    /// Add or replace an entry; returns the MIHF ID it replaced.
    pub fn insert(
        &mut self,
        key: TargetKey,
        mihf_id: impl Into<String>,
    ) -> Result<Option<String>, TableError> {
        key.check()?;
        let mihf_id = mihf_id.into();
        if mihf_id.is_empty() {
            return Err(TableError::BadNeighbour("empty mihf_id".into()));
        }
        if !self.entries.contains_key(&key) && self.entries.len() >= self.capacity {
            return Err(TableError::Full {
                table: "neighbour",
                capacity: self.capacity,
            });
        }
        if let TargetKey::Enb { bits, .. } = key {
            self.enb_bits.insert(bits);
        }
        Ok(self.entries.insert(key, mihf_id))
    }

    /// Add an entry from configuration.
    pub fn insert_config(&mut self, c: &NeighbourConfig) -> Result<Option<String>, TableError> {
        self.insert(c.key()?, c.mihf_id.clone())
    }

    /// Remove an entry; returns its MIHF ID.
    pub fn remove(&mut self, key: &TargetKey) -> Option<String> {
        let old = self.entries.remove(key);
        if let TargetKey::Enb { bits, .. } = key {
            if !self
                .entries
                .keys()
                .any(|k| matches!(k, TargetKey::Enb { bits: b, .. } if b == bits))
            {
                self.enb_bits.remove(bits);
            }
        }
        old
    }

    /// The MIHF ID serving `cell`.
    pub fn resolve(&self, cell: &Ecgi) -> Option<&str> {
        if let Some(m) = self.entries.get(&TargetKey::Cell(*cell)) {
            return Some(m);
        }
        self.enb_bits.iter().rev().find_map(|&bits| {
            let enb_id = cell.enb_id(bits)?;
            self.entries
                .get(&TargetKey::Enb {
                    plmn: cell.plmn,
                    enb_id,
                    bits,
                })
                .map(String::as_str)
        })
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every entry, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&TargetKey, &str)> {
        self.entries.iter().map(|(k, v)| (k, v.as_str()))
    }
}

/// How a UE is recognised in X2AP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UeKey {
    /// Old eNB UE X2AP ID (the source eNB's id of the UE).
    X2apId(u16),
    /// The uplink GTP-TEID of one of the UE's E-RABs (allocated by the S-GW).
    GtpTeid(u32),
}

/// One UE in the configuration: its address and at least one key.
///
/// ```toml
/// [[ues]]
/// ue_address = "10.45.0.7"
/// ul_gtp_teid = 0x101            # and/or:
/// old_enb_ue_x2ap_id = 17
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UeConfig {
    /// The UE's IP address (what its services know it by).
    pub ue_address: IpAddr,
    /// Uplink GTP-TEID of one of its E-RABs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ul_gtp_teid: Option<u32>,
    /// Old eNB UE X2AP ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_enb_ue_x2ap_id: Option<u16>,
}

impl UeConfig {
    /// The keys this entry stands for (one or two).
    pub fn keys(&self) -> Result<Vec<UeKey>, TableError> {
        let mut keys = Vec::with_capacity(2);
        if let Some(id) = self.old_enb_ue_x2ap_id {
            if id > 4095 {
                return Err(TableError::BadUe(format!(
                    "old_enb_ue_x2ap_id {id} is not 0..=4095"
                )));
            }
            keys.push(UeKey::X2apId(id));
        }
        if let Some(teid) = self.ul_gtp_teid {
            keys.push(UeKey::GtpTeid(teid));
        }
        if keys.is_empty() {
            return Err(TableError::BadUe(format!(
                "{}: give ul_gtp_teid and/or old_enb_ue_x2ap_id",
                self.ue_address
            )));
        }
        Ok(keys)
    }
}

/// UE key → UE IP address.
///
/// ```
/// use mih_user::x2ap::{UeKey, UeTable};
/// let mut t = UeTable::new(16);
/// t.insert(UeKey::GtpTeid(0x101), "10.45.0.7".parse().unwrap()).unwrap();
/// assert_eq!(t.resolve(99, [0x202, 0x101]), Some((UeKey::GtpTeid(0x101), "10.45.0.7".parse().unwrap())));
/// assert_eq!(t.resolve(99, [0x202]), None);
/// ```
#[derive(Debug, Clone)]
pub struct UeTable {
    entries: HashMap<UeKey, IpAddr>,
    capacity: usize,
}

impl UeTable {
    /// An empty table holding at most `capacity` keys.
    pub fn new(capacity: usize) -> UeTable {
        UeTable {
            entries: HashMap::new(),
            capacity,
        }
    }

    /// Add or replace a key; returns the address it replaced.
    pub fn insert(&mut self, key: UeKey, address: IpAddr) -> Result<Option<IpAddr>, TableError> {
        if let UeKey::X2apId(id) = key {
            if id > 4095 {
                return Err(TableError::BadUe(format!(
                    "Old eNB UE X2AP ID {id} is not 0..=4095"
                )));
            }
        }
        if !self.entries.contains_key(&key) && self.entries.len() >= self.capacity {
            return Err(TableError::Full {
                table: "UE",
                capacity: self.capacity,
            });
        }
        Ok(self.entries.insert(key, address))
    }

    /// Add the keys of a configuration entry (all or none).
    pub fn insert_config(&mut self, c: &UeConfig) -> Result<(), TableError> {
        let keys = c.keys()?;
        let new = keys
            .iter()
            .filter(|k| !self.entries.contains_key(k))
            .count();
        if self.entries.len() + new > self.capacity {
            return Err(TableError::Full {
                table: "UE",
                capacity: self.capacity,
            });
        }
        for k in keys {
            self.insert(k, c.ue_address)?;
        }
        Ok(())
    }

    /// Remove a key; returns its address.
    pub fn remove(&mut self, key: &UeKey) -> Option<IpAddr> {
        self.entries.remove(key)
    }

    /// The address under one key.
    pub fn get(&self, key: &UeKey) -> Option<IpAddr> {
        self.entries.get(key).copied()
    }

    /// The UE's address by its Old eNB UE X2AP ID, else by the first of its
    /// uplink GTP-TEIDs that is known; with the key that matched.
    pub fn resolve(
        &self,
        old_enb_ue_x2ap_id: u16,
        ul_teids: impl IntoIterator<Item = u32>,
    ) -> Option<(UeKey, IpAddr)> {
        let by_id = UeKey::X2apId(old_enb_ue_x2ap_id);
        if let Some(a) = self.get(&by_id) {
            return Some((by_id, a));
        }
        ul_teids.into_iter().find_map(|t| {
            let k = UeKey::GtpTeid(t);
            self.get(&k).map(|a| (k, a))
        })
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No keys.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plmn() -> Plmn {
        Plmn::parse("001-01").unwrap()
    }

    #[test]
    fn neighbour_capacity_and_validation() {
        let mut t = NeighbourTable::new(1);
        t.insert(TargetKey::macro_enb(plmn(), 1), "a").unwrap();
        assert_eq!(
            t.insert(TargetKey::macro_enb(plmn(), 1), "b").unwrap(),
            Some("a".to_string())
        );
        assert!(matches!(
            t.insert(TargetKey::macro_enb(plmn(), 2), "c"),
            Err(TableError::Full { .. })
        ));
        assert!(matches!(
            NeighbourTable::new(4).insert(TargetKey::macro_enb(plmn(), 1 << 20), "x"),
            Err(TableError::BadNeighbour(_))
        ));
        assert!(matches!(
            NeighbourTable::new(4).insert(
                TargetKey::Cell(Ecgi {
                    plmn: plmn(),
                    cell_id: 1 << 28
                }),
                "x"
            ),
            Err(TableError::BadNeighbour(_))
        ));
        assert!(matches!(
            NeighbourTable::new(4).insert(TargetKey::macro_enb(plmn(), 1), ""),
            Err(TableError::BadNeighbour(_))
        ));
        assert_eq!(t.remove(&TargetKey::macro_enb(plmn(), 1)), Some("b".into()));
        assert!(t.is_empty());
        assert_eq!(
            t.resolve(&Ecgi {
                plmn: plmn(),
                cell_id: 0x100
            }),
            None
        );
    }

    #[test]
    fn longest_enb_id_wins() {
        let mut t = NeighbourTable::new(8);
        t.insert(TargetKey::macro_enb(plmn(), 0x1a2b3), "macro")
            .unwrap();
        t.insert(
            TargetKey::Enb {
                plmn: plmn(),
                enb_id: 0x1a2b30f,
                bits: 28,
            },
            "home",
        )
        .unwrap();
        let cell = |c| Ecgi {
            plmn: plmn(),
            cell_id: c,
        };
        assert_eq!(t.resolve(&cell(0x1a2b30f)), Some("home"));
        assert_eq!(t.resolve(&cell(0x1a2b301)), Some("macro"));
        let other = Ecgi {
            plmn: Plmn::parse("001-02").unwrap(),
            cell_id: 0x1a2b301,
        };
        assert_eq!(t.resolve(&other), None);
    }

    #[test]
    fn neighbour_config_keys() {
        let c = |cell_id, enb_id, bits| NeighbourConfig {
            plmn: "001-01".into(),
            cell_id,
            enb_id,
            enb_id_bits: bits,
            mihf_id: "m".into(),
        };
        assert!(c(Some(1), None, None).key().is_ok());
        assert!(c(None, Some(1), Some(28)).key().is_ok());
        assert!(c(Some(1), Some(1), None).key().is_err());
        assert!(c(None, None, None).key().is_err());
        assert!(c(Some(1), None, Some(20)).key().is_err());
        assert!(c(None, Some(1), Some(0)).key().is_err());
        assert!(c(None, Some(1), Some(29)).key().is_err());
        let mut bad = c(Some(1), None, None);
        bad.plmn = "1-1".into();
        assert_eq!(bad.key(), Err(TableError::BadPlmn("1-1".into())));
    }

    #[test]
    fn ue_table() {
        let a: IpAddr = "10.0.0.7".parse().unwrap();
        let b: IpAddr = "2001:db8::7".parse().unwrap();
        let mut t = UeTable::new(2);
        t.insert_config(&UeConfig {
            ue_address: a,
            ul_gtp_teid: Some(7),
            old_enb_ue_x2ap_id: Some(17),
        })
        .unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t.resolve(17, []), Some((UeKey::X2apId(17), a)));
        assert_eq!(t.resolve(18, [1, 7]), Some((UeKey::GtpTeid(7), a)));
        assert!(matches!(
            t.insert(UeKey::GtpTeid(8), b),
            Err(TableError::Full { .. })
        ));
        assert_eq!(t.insert(UeKey::GtpTeid(7), b).unwrap(), Some(a));
        assert!(t
            .insert_config(&UeConfig {
                ue_address: a,
                ul_gtp_teid: None,
                old_enb_ue_x2ap_id: None
            })
            .is_err());
        assert!(matches!(
            UeTable::new(4).insert(UeKey::X2apId(4096), a),
            Err(TableError::BadUe(_))
        ));
        assert_eq!(t.remove(&UeKey::GtpTeid(7)), Some(b));
        assert_eq!(t.get(&UeKey::GtpTeid(7)), None);
    }
}
