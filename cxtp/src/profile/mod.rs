//! Feature profiles: typed contexts, the FPT values we use, and a registry
//! that maps FPT codes to handlers.
//!
//! A *context* ([`Context`]) is the payload of one feature: an FPT, an
//! optional presence vector and its data octets, of any length. Small
//! contexts travel as one Context Data Block; contexts larger than one CDB
//! are carried by the segmentation scheme of [`crate::segment`] and handed
//! back here whole.
//!
//! A service defines its own context type by implementing
//! [`FeatureProfile`] and registering it under an FPT of its choice:
//!
//! ```
//! use bytes::Bytes;
//! use cxtp::profile::{Context, FeatureProfile, ProfileError, ProfileRegistry, Decoded};
//!
//! #[derive(Debug, PartialEq)]
//! struct Counter(u32);
//! impl FeatureProfile for Counter {
//!     const NAME: &'static str = "example counter";
//!     const DEFAULT_FPT: u16 = 0xFF42;
//!     fn encode(&self) -> (Option<u32>, Bytes) {
//!         (None, Bytes::copy_from_slice(&self.0.to_be_bytes()))
//!     }
//!     fn decode(_pv: Option<u32>, data: &Bytes) -> Result<Self, ProfileError> {
//!         let b: [u8; 4] = data.get(..4).ok_or(ProfileError::Truncated { profile: Self::NAME, field: "value" })?
//!             .try_into().unwrap();
//!         Ok(Counter(u32::from_be_bytes(b)))
//!     }
//! }
//!
//! let mut reg = ProfileRegistry::with_builtins();
//! reg.register::<Counter>(Counter::DEFAULT_FPT);
//! let ctx = reg.encode(&Counter(7)).unwrap();
//! assert_eq!(ctx.fpt, 0xFF42);
//! match reg.decode(&ctx) {
//!     Decoded::Known { value, .. } => assert_eq!(value.downcast_ref::<Counter>(), Some(&Counter(7))),
//!     other => panic!("{other:?}"),
//! }
//! // Unknown FPTs stay opaque.
//! assert!(matches!(reg.decode(&Context::new(0x7777, Bytes::new())), Decoded::Unknown(_)));
//! ```

mod builtin;

pub use builtin::{AppServiceContext, MulticastListenerContext, TcpSessionContext};

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use crate::wire::StatusEntry;

/// Feature Profile Type values used by this crate, in one place.
///
/// Only 0x0001 is registered with IANA. The others are this project's own
/// values taken from the top of the 16-bit space (`0xFF00..`), which IANA
/// allocates only by Expert Review and which no registration comes near;
/// every one can be moved with [`ProfileRegistry::register`] /
/// [`crate::segment::SegmentConfig`] if a deployment needs other values.
pub mod fpt {
    /// Reserved by IANA.
    pub const RESERVED: u16 = 0x0000;
    /// IANA: IPv6 Multicast Listener Context (RFC 4067 Appendix B).
    pub const IPV6_MULTICAST_LISTENER: u16 = 0x0001;
    /// Ours: segmentation / multi-message transfer blocks ([`crate::segment`]).
    pub const SEGMENT: u16 = 0xFF00;
    /// Ours: application service context ([`super::AppServiceContext`]).
    pub const APP_SERVICE: u16 = 0xFF01;
    /// Ours: TCP session for TCP_REPAIR ([`super::TcpSessionContext`]).
    pub const TCP_SESSION: u16 = 0xFF02;
    /// Ours: the transfer id echo in the CTDR of an identified transfer
    /// (status entries only, never a context; [`super::echo`]).
    pub const TRANSFER_ID: u16 = 0xFF03;
}

pub mod echo;

/// The status table: each code's constant, value and name, written once.
macro_rules! statuses {
    ($($(#[$doc:meta])* $c:ident = $v:literal, $name:literal;)*) => {
        $($(#[$doc])* pub const $c: u8 = $v;)*

        /// The name of a status code, if it is in the table ("success",
        /// "unsupported FPT", ...).
        pub const fn name(code: u8) -> Option<&'static str> {
            match code {
                $($v => Some($name),)*
                _ => None,
            }
        }
    };
}

/// Status codes for CTDR/CTAA entries: the one table of the codes the
/// stack sends. 0 and 1 are RFC 4067 §4; the RFC leaves failure codes to
/// each context type, so the rest are ours: 0x80.. for the CXTP layer
/// (this crate), 0xA0.. for the service and session imports of
/// `mih-user`.
pub mod status {
    statuses! {
        /// Success.
        SUCCESS = 0x00, "success";
        /// RFC 4067 BAD_CHECKSUM.
        BAD_CHECKSUM = 0x01, "bad checksum";
        /// The receiver has no handler for this FPT (kept as an opaque block).
        UNSUPPORTED_FPT = 0x80, "unsupported FPT";
        /// The handler could not decode the context data.
        MALFORMED = 0x81, "malformed";
        /// A segmented context could not be reassembled (too large, timed out,
        /// inconsistent segments).
        REASSEMBLY_FAILED = 0x82, "reassembly failed";
        /// The token did not verify; nothing was installed.
        UNAUTHORIZED = 0x83, "unauthorized";
        /// The transfer was cancelled or timed out.
        TIMEOUT = 0x84, "timeout";
        /// mih-user: the service refused the context.
        SERVICE_REFUSED = 0xA0, "service refused";
        /// mih-user: the service has no capacity for the UE.
        SERVICE_NO_CAPACITY = 0xA1, "service has no capacity";
        /// mih-user: the service went away, the context was too large for
        /// it, or it was listed twice.
        SERVICE_UNAVAILABLE = 0xA2, "service unavailable";
        /// mih-user: a session the importer could not rebuild.
        SESSION_FAILED = 0xA3, "session failed";
    }
}

/// One feature context: FPT, optional presence vector, and data of any
/// length (a [`Bytes`] slice of the received CDB when it fit one block).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Context {
    /// Feature Profile Type.
    pub fpt: u16,
    /// Presence vector, if the profile uses one.
    pub presence_vector: Option<u32>,
    /// Context data (for a single CDB this includes its zero padding).
    pub data: Bytes,
}

impl Context {
    /// Context without a presence vector.
    pub fn new(fpt: u16, data: Bytes) -> Self {
        Context {
            fpt,
            presence_vector: None,
            data,
        }
    }
}

/// Errors of profile encoders/decoders.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// Data shorter than a field.
    #[error("{profile}: truncated {field}")]
    Truncated {
        /// Profile name.
        profile: &'static str,
        /// Field name.
        field: &'static str,
    },
    /// A field value is not acceptable.
    #[error("{profile}: invalid {field}")]
    Invalid {
        /// Profile name.
        profile: &'static str,
        /// Field name.
        field: &'static str,
    },
    /// The type is not registered.
    #[error("profile {0} is not registered")]
    NotRegistered(&'static str),
}

/// A typed context. `encode` and `decode` must be symmetric; `decode` gets
/// the data possibly followed by up to 7 zero padding octets, so variable
/// fields must carry their own lengths.
pub trait FeatureProfile: Sized + Send + Sync + 'static {
    /// Human-readable name.
    const NAME: &'static str;
    /// FPT used by [`ProfileRegistry::with_builtins`] / the examples.
    const DEFAULT_FPT: u16;
    /// Presence vector and data.
    fn encode(&self) -> (Option<u32>, Bytes);
    /// Parse the data of one context.
    fn decode(presence_vector: Option<u32>, data: &Bytes) -> Result<Self, ProfileError>;
}

/// Object-safe handler stored in the registry.
pub trait ProfileHandler: Send + Sync {
    /// Profile name.
    fn name(&self) -> &'static str;
    /// Decode a context into a typed value.
    fn decode(&self, ctx: &Context) -> Result<Box<dyn Any + Send>, ProfileError>;
}

struct Typed<P>(std::marker::PhantomData<fn() -> P>);

impl<P: FeatureProfile> ProfileHandler for Typed<P> {
    fn name(&self) -> &'static str {
        P::NAME
    }
    fn decode(&self, ctx: &Context) -> Result<Box<dyn Any + Send>, ProfileError> {
        Ok(Box::new(P::decode(ctx.presence_vector, &ctx.data)?))
    }
}

/// Result of decoding one context through the registry.
pub enum Decoded {
    /// A registered profile decoded it.
    Known {
        /// FPT.
        fpt: u16,
        /// Profile name.
        name: &'static str,
        /// The typed value (downcast with `downcast_ref::<P>()`).
        value: Box<dyn Any + Send>,
    },
    /// No handler: kept as an opaque block.
    Unknown(Context),
    /// The handler rejected the data.
    Malformed {
        /// FPT.
        fpt: u16,
        /// Why.
        error: ProfileError,
    },
}

impl fmt::Debug for Decoded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decoded::Known { fpt, name, .. } => write!(f, "Known({fpt:#06x}, {name})"),
            Decoded::Unknown(c) => write!(f, "Unknown({:#06x}, {} octets)", c.fpt, c.data.len()),
            Decoded::Malformed { fpt, error } => write!(f, "Malformed({fpt:#06x}, {error})"),
        }
    }
}

impl Decoded {
    /// CTDR/CTAA status for this result.
    pub fn status(&self) -> u8 {
        match self {
            Decoded::Known { .. } => status::SUCCESS,
            Decoded::Unknown(_) => status::UNSUPPORTED_FPT,
            Decoded::Malformed { .. } => status::MALFORMED,
        }
    }
    /// The FPT.
    pub fn fpt(&self) -> u16 {
        match self {
            Decoded::Known { fpt, .. } | Decoded::Malformed { fpt, .. } => *fpt,
            Decoded::Unknown(c) => c.fpt,
        }
    }
}

/// Maps FPT codes to profile handlers (and profile types to their
/// configured FPT). Cheap to clone.
#[derive(Clone, Default)]
pub struct ProfileRegistry {
    by_fpt: HashMap<u16, Arc<dyn ProfileHandler>>,
    by_type: HashMap<TypeId, u16>,
}

impl fmt::Debug for ProfileRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m: Vec<_> = self.by_fpt.iter().map(|(k, v)| (*k, v.name())).collect();
        m.sort();
        f.debug_struct("ProfileRegistry")
            .field("profiles", &m)
            .finish()
    }
}

impl ProfileRegistry {
    /// Empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registry with the built-in profiles at their default FPTs
    /// ([`fpt::IPV6_MULTICAST_LISTENER`], [`fpt::APP_SERVICE`],
    /// [`fpt::TCP_SESSION`]).
    pub fn with_builtins() -> Self {
        let mut r = Self::new();
        r.register::<MulticastListenerContext>(fpt::IPV6_MULTICAST_LISTENER);
        r.register::<AppServiceContext>(fpt::APP_SERVICE);
        r.register::<TcpSessionContext>(fpt::TCP_SESSION);
        r
    }

    /// Register (or move) typed profile `P` under `fpt`.
    pub fn register<P: FeatureProfile>(&mut self, fpt: u16) -> &mut Self {
        if let Some(old) = self.by_type.insert(TypeId::of::<P>(), fpt) {
            self.by_fpt.remove(&old);
        }
        self.by_fpt
            .insert(fpt, Arc::new(Typed::<P>(std::marker::PhantomData)));
        self
    }

    /// Register an untyped handler.
    pub fn register_handler(&mut self, fpt: u16, handler: Arc<dyn ProfileHandler>) -> &mut Self {
        self.by_fpt.insert(fpt, handler);
        self
    }

    /// Whether `fpt` has a handler.
    pub fn is_known(&self, fpt: u16) -> bool {
        self.by_fpt.contains_key(&fpt)
    }

    /// The FPT `P` is registered under.
    pub fn fpt_of<P: FeatureProfile>(&self) -> Option<u16> {
        self.by_type.get(&TypeId::of::<P>()).copied()
    }

    /// Encode a typed value into a [`Context`] under its configured FPT.
    pub fn encode<P: FeatureProfile>(&self, value: &P) -> Result<Context, ProfileError> {
        let fpt = self
            .fpt_of::<P>()
            .ok_or(ProfileError::NotRegistered(P::NAME))?;
        let (presence_vector, data) = value.encode();
        Ok(Context {
            fpt,
            presence_vector,
            data,
        })
    }

    /// Decode one context.
    pub fn decode(&self, ctx: &Context) -> Decoded {
        match self.by_fpt.get(&ctx.fpt) {
            None => Decoded::Unknown(ctx.clone()),
            Some(h) => match h.decode(ctx) {
                Ok(value) => Decoded::Known {
                    fpt: ctx.fpt,
                    name: h.name(),
                    value,
                },
                Err(error) => Decoded::Malformed {
                    fpt: ctx.fpt,
                    error,
                },
            },
        }
    }

    /// Decode a set of contexts and build the CTDR verdict: `S` and one entry
    /// per FPT (the worst status among the contexts of that FPT). When every
    /// context succeeded, `S = 1` and no entries are listed; otherwise every
    /// FPT received is listed, successes with status 0.
    pub fn receive(&self, contexts: &[Context]) -> (Vec<Decoded>, bool, Vec<StatusEntry>) {
        let decoded: Vec<Decoded> = contexts.iter().map(|c| self.decode(c)).collect();
        let verdict = verdict(decoded.iter().map(|d| (d.fpt(), d.status())));
        (decoded, verdict.0, verdict.1)
    }
}

/// Fold per-context `(fpt, status)` pairs into the CTDR `S` flag and
/// entries (first-seen FPT order, worst = first nonzero status per FPT).
pub fn verdict(results: impl IntoIterator<Item = (u16, u8)>) -> (bool, Vec<StatusEntry>) {
    let mut entries: Vec<StatusEntry> = Vec::new();
    for (fpt, st) in results {
        match entries.iter_mut().find(|e| e.fpt == fpt) {
            Some(e) => {
                if e.status == status::SUCCESS {
                    e.status = st
                }
            }
            None => entries.push(StatusEntry { fpt, status: st }),
        }
    }
    if entries.iter().all(|e| e.status == status::SUCCESS) {
        (true, Vec::new())
    } else {
        (false, entries)
    }
}
