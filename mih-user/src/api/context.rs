//! A service's context for one UE and how it travels in CXTP.

use bytes::Bytes;
use cxtp::profile::{fpt, AppServiceContext, Context, FeatureProfile, ProfileError};

/// One service's exported context for one UE: the service identifier, the
/// Feature Profile Type the service registered with, and its opaque bytes.
///
/// In CXTP the context is one [`cxtp::profile::Context`] whose FPT is
/// `fpt` and whose data is the [`AppServiceContext`] layout (service ID and
/// state, each with its length), so the state crosses unchanged, padding
/// and segmentation included, and the receiver knows which service it is
/// for even when several services share an FPT. Services that do not pick
/// an FPT use [`fpt::APP_SERVICE`] (0xFF01), which `cxtp`'s
/// `ProfileRegistry::with_builtins()` decodes as `AppServiceContext`.
///
/// ```
/// use bytes::Bytes;
/// use mih_user::api::ServiceContext;
///
/// let ctx = ServiceContext::new("http-download", 0xFF01, Bytes::from_static(b"state"));
/// let on_the_wire = ctx.to_cxtp();
/// assert_eq!(on_the_wire.fpt, 0xFF01);
/// assert_eq!(ServiceContext::from_cxtp(&on_the_wire).unwrap(), ctx);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceContext {
    /// Service identifier.
    pub service_id: String,
    /// Feature Profile Type.
    pub fpt: u16,
    /// Opaque state.
    pub data: Bytes,
}

impl ServiceContext {
    /// Shorthand.
    pub fn new(service_id: impl Into<String>, fpt: u16, data: Bytes) -> Self {
        ServiceContext {
            service_id: service_id.into(),
            fpt,
            data,
        }
    }

    /// The CXTP context that carries it (FPT `self.fpt`, data in the
    /// [`AppServiceContext`] layout).
    pub fn to_cxtp(&self) -> Context {
        let (presence_vector, data) = AppServiceContext {
            service_id: self.service_id.clone(),
            state: self.data.clone(),
        }
        .encode();
        Context {
            fpt: self.fpt,
            presence_vector,
            data,
        }
    }

    /// Read a received CXTP context back (zero-copy for the state). Fails
    /// on an FPT that cannot carry a service context or malformed data.
    pub fn from_cxtp(ctx: &Context) -> Result<Self, ProfileError> {
        if !is_service_fpt(ctx.fpt) {
            return Err(ProfileError::Invalid {
                profile: AppServiceContext::NAME,
                field: "fpt",
            });
        }
        let a = AppServiceContext::decode(ctx.presence_vector, &ctx.data)?;
        Ok(ServiceContext {
            service_id: a.service_id,
            fpt: ctx.fpt,
            data: a.state,
        })
    }
}

/// Whether a service may register with `code`: every value except the
/// ones `cxtp` uses for something else (0x0000 reserved, 0x0001 IPv6
/// multicast listener, 0xFF00 segmentation, 0xFF02 TCP session).
pub fn is_service_fpt(code: u16) -> bool {
    !matches!(
        code,
        fpt::RESERVED | fpt::IPV6_MULTICAST_LISTENER | fpt::SEGMENT | fpt::TCP_SESSION
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use cxtp::profile::{Decoded, ProfileRegistry};

    #[test]
    fn default_fpt_decodes_with_cxtp_builtins() {
        let ctx = ServiceContext::new("svc", fpt::APP_SERVICE, Bytes::from_static(b"\x00\x01abc"));
        let c = ctx.to_cxtp();
        match ProfileRegistry::with_builtins().decode(&c) {
            Decoded::Known { value, .. } => {
                let a = value.downcast_ref::<AppServiceContext>().unwrap();
                assert_eq!(a.service_id, "svc");
                assert_eq!(&a.state[..], b"\x00\x01abc");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn survives_cdb_padding_and_custom_fpt() {
        let ctx = ServiceContext::new("svc", 0xFF42, Bytes::from_static(b"abc"));
        let mut c = ctx.to_cxtp();
        let mut padded = c.data.to_vec();
        padded.resize(padded.len().div_ceil(8) * 8 + 4, 0);
        c.data = padded.into();
        assert_eq!(ServiceContext::from_cxtp(&c).unwrap(), ctx);
        c.fpt = fpt::TCP_SESSION;
        assert!(ServiceContext::from_cxtp(&c).is_err());
    }
}
