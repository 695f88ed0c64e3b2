//! Typed MIH messages.
//!
//! A [`Message`] is the header, the Source and Destination MIHF IDs that open
//! every payload, a typed [`Body`] and any TLVs the body does not define
//! ([`RawTlvs`], kept with their position so the frame re-emits byte for byte).
//!
//! Command and management primitives have a request form (used by `.request`
//! and, on a local SAP, `.indication`) and a response form (`.response` and
//! `.confirm`). TLV order follows IEEE 802.21-2008 clause 8.6: a decoder
//! rejects a missing mandatory TLV, a TLV out of order or repeated, and a TLV
//! whose value does not fit its data type, naming the message and the TLV.

use bytes::{BufMut, Bytes, BytesMut};

use super::error::Error;
use super::header::{Frame, Header, Mid, Opcode, ServiceId, HEADER_LEN};
use super::info::*;
use super::tlv::{emit_tlv, Tlv, TlvIter, Value};
use super::types::*;

/// TLV type of the Source MIHF ID.
pub const TLV_SOURCE_ID: u8 = 1;
/// TLV type of the Destination MIHF ID.
pub const TLV_DESTINATION_ID: u8 = 2;

/// A run of consecutive TLVs that the message's body does not define, kept
/// as it was on the wire (a slice of the frame, nothing copied).
///
/// Unknown TLVs next to each other form one run, so a message holds at most
/// one run per gap between its known TLVs: decoding allocates a bounded
/// amount however many unknown TLVs the input packs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawTlvs {
    /// Index in the payload of the run's first TLV (the Source ID is 0).
    pub position: usize,
    raw: Bytes,
    count: usize,
}

impl RawTlvs {
    /// A run from whole encoded TLVs; errors if `raw` is not a well-formed
    /// TLV sequence.
    pub fn new(position: usize, raw: Bytes) -> Result<RawTlvs, Error> {
        let mut it = TlvIter::new(&raw);
        let count = it.by_ref().count();
        if let Some(e) = it.error() {
            return Err(e);
        }
        Ok(RawTlvs {
            position,
            raw,
            count,
        })
    }
    /// The encoded TLVs.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }
    /// Number of TLVs in the run.
    pub fn count(&self) -> usize {
        self.count
    }
    /// The TLVs of the run.
    pub fn iter(&self) -> TlvIter<'_> {
        TlvIter::new(&self.raw)
    }
}

/// Decoding state shared by the body decoders.
pub struct BodyDecoder<'a> {
    base: &'a Bytes,
    tlvs: TlvIter<'a>,
    name: &'static str,
    extra: &'a mut Vec<RawTlvs>,
    index: usize,
    cursor: usize,
}

impl<'a> BodyDecoder<'a> {
    fn next(&mut self) -> Result<Option<Tlv<'a>>, Error> {
        match self.tlvs.next() {
            Some(t) => {
                self.index += 1;
                Ok(Some(t))
            }
            None => match self.tlvs.error() {
                Some(e) => Err(e),
                None => Ok(None),
            },
        }
    }

    fn keep_unknown(&mut self, tlv: Tlv<'a>) {
        let position = self.index - 1;
        let end = HEADER_LEN + tlv.offset + tlv.raw.len();
        if let Some(last) = self.extra.last_mut() {
            if last.position + last.count == position {
                // Contiguous with the previous unknown TLV: widen the run.
                let start = end - tlv.raw.len() - last.raw.len();
                last.raw = self.base.slice(start..end);
                last.count += 1;
                return;
            }
        }
        self.extra.push(RawTlvs {
            position,
            raw: self.base.slice(end - tlv.raw.len()..end),
            count: 1,
        });
    }

    /// Check that the TLV at `pos` of `order` may come now; skipping a
    /// mandatory TLV or going back is an error.
    fn check_order(&mut self, order: &[(u8, &'static str, bool)], pos: usize) -> Result<(), Error> {
        if pos < self.cursor {
            let (tlv, name, _) = order[pos];
            return Err(Error::OutOfOrder {
                message: self.name,
                tlv,
                name,
            });
        }
        if let Some(&(tlv, name, _)) = order[self.cursor..pos].iter().find(|e| e.2) {
            return Err(Error::MissingTlv {
                message: self.name,
                tlv,
                name,
            });
        }
        self.cursor = pos + 1;
        Ok(())
    }

    fn value<T: Value>(&self, tlv: Tlv<'_>, name: &'static str) -> Result<T, Error> {
        T::decode_exact(self.base, tlv.value).map_err(|error| Error::BadValue {
            message: self.name,
            tlv: tlv.ty,
            name,
            error,
        })
    }

    fn missing(&self, tlv: u8, name: &'static str) -> Error {
        Error::MissingTlv {
            message: self.name,
            tlv,
            name,
        }
    }
}

/// Emission state: writes TLVs and slots unknown TLVs back at their positions.
pub struct Emitter<'a> {
    out: &'a mut BytesMut,
    extra: &'a [RawTlvs],
    next_extra: usize,
    index: usize,
}

impl Emitter<'_> {
    fn flush_extra(&mut self, upto: usize) {
        while let Some(t) = self.extra.get(self.next_extra) {
            if t.position > upto {
                break;
            }
            self.out.put_slice(&t.raw);
            self.next_extra += 1;
            self.index += t.count;
        }
    }

    /// Append one TLV.
    pub fn tlv<V: Value>(&mut self, ty: u8, v: &V) {
        self.flush_extra(self.index);
        emit_tlv(ty, v, self.out);
        self.index += 1;
    }

    fn finish(&mut self) {
        self.flush_extra(usize::MAX);
    }
}

/// A message body: the TLVs after the Source and Destination IDs.
pub trait BodyCodec: Sized {
    /// `(TLV type, TLV name, mandatory)` in the standard's order.
    const TLVS: &'static [(u8, &'static str, bool)];
    fn decode_body(d: &mut BodyDecoder<'_>) -> Result<Self, Error>;
    fn emit_body(&self, e: &mut Emitter<'_>);
}

macro_rules! field_ty {
    (req $t:ty) => { $t };
    (opt $t:ty) => { Option<$t> };
}
macro_rules! is_req {
    (req) => {
        true
    };
    (opt) => {
        false
    };
}
macro_rules! take_field {
    (req, $f:ident, $d:ident, $tlv:literal, $label:literal) => {
        match $f {
            Some(v) => v,
            None => return Err($d.missing($tlv, $label)),
        }
    };
    (opt, $f:ident, $d:ident, $tlv:literal, $label:literal) => {
        $f
    };
}
macro_rules! emit_field {
    (req, $e:ident, $tlv:literal, $v:expr) => {
        $e.tlv($tlv, $v)
    };
    (opt, $e:ident, $tlv:literal, $v:expr) => {
        if let Some(v) = $v {
            $e.tlv($tlv, v)
        }
    };
}

macro_rules! body {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $f:ident : $kind:ident $t:ty = $tlv:literal $label:literal,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name {
            $($(#[$fm])* pub $f: field_ty!($kind $t),)*
        }

        impl BodyCodec for $name {
            const TLVS: &'static [(u8, &'static str, bool)] = &[$(($tlv, $label, is_req!($kind))),*];

            #[allow(unused_mut, unused_variables)]
            fn decode_body(d: &mut BodyDecoder<'_>) -> Result<Self, Error> {
                $(let mut $f: Option<$t> = None;)*
                while let Some(tlv) = d.next()? {
                    let Some(pos) = Self::TLVS.iter().position(|e| e.0 == tlv.ty) else {
                        d.keep_unknown(tlv);
                        continue;
                    };
                    d.check_order(Self::TLVS, pos)?;
                    match tlv.ty {
                        $($tlv => $f = Some(d.value::<$t>(tlv, $label)?),)*
                        _ => {}
                    }
                }
                Ok($name { $($f: take_field!($kind, $f, d, $tlv, $label),)* })
            }

            #[allow(unused_variables)]
            fn emit_body(&self, e: &mut Emitter<'_>) {
                $(emit_field!($kind, e, $tlv, &self.$f);)*
            }
        }
    };
}

// --- Service management -----------------------------------------------------

body!(
    /// MIH_Capability_Discover.request (and .indication).
    CapabilityDiscoverRequest {
        link_addr_list: opt List<NetTypeAddr> = 9 "Link address list",
        event_list: opt EventList = 5 "MIH event list",
        command_list: opt CommandList = 6 "MIH command list",
        is_query_types: opt IsQueryTypeList = 7 "MIIS query type list",
        transports: opt TransportList = 8 "Transport option list",
        mbb_ho_support: opt List<MbbHoSupp> = 10 "MBB handover support",
    }
);

body!(
    /// MIH_Capability_Discover.response (and .confirm).
    CapabilityDiscoverResponse {
        status: req Status = 3 "Status",
        link_addr_list: opt List<NetTypeAddr> = 9 "Link address list",
        event_list: opt EventList = 5 "MIH event list",
        command_list: opt CommandList = 6 "MIH command list",
        is_query_types: opt IsQueryTypeList = 7 "MIIS query type list",
        transports: opt TransportList = 8 "Transport option list",
        mbb_ho_support: opt List<MbbHoSupp> = 10 "MBB handover support",
    }
);

body!(
    /// MIH_Register.request.
    RegisterRequest {
        link_ids: req List<LinkId> = 25 "Link identifier list",
        request_code: req RegRequestCode = 11 "Register request code",
    }
);

body!(
    /// MIH_Register.response.
    RegisterResponse {
        status: req Status = 3 "Status",
        /// Seconds the registration stays valid.
        valid_time_interval: opt u32 = 12 "Valid time interval",
        /// ODTONE sends TLV 21 (Time interval, 2 octets) where the standard
        /// has TLV 12; accepted and re-emitted as received.
        odtone_time_interval: opt u16 = 21 "Time interval (ODTONE)",
    }
);

body!(
    /// MIH_DeRegister.request: no TLVs beyond the IDs.
    DeRegisterRequest {}
);

body!(
    /// MIH_DeRegister.response.
    DeRegisterResponse {
        status: req Status = 3 "Status",
    }
);

body!(
    /// MIH_Event_Subscribe.request.
    EventSubscribeRequest {
        link: req LinkTupleId = 13 "Link identifier",
        events: req EventList = 5 "MIH event list",
        config: opt List<EvtCfgInfo> = 54 "Event configuration info list",
    }
);

body!(
    /// MIH_Event_Subscribe.response.
    EventSubscribeResponse {
        status: req Status = 3 "Status",
        link: req LinkTupleId = 13 "Link identifier",
        events: opt EventList = 5 "MIH event list",
    }
);

body!(
    /// MIH_Event_Unsubscribe.request.
    EventUnsubscribeRequest {
        link: req LinkTupleId = 13 "Link identifier",
        events: req EventList = 5 "MIH event list",
    }
);

body!(
    /// MIH_Event_Unsubscribe.response.
    EventUnsubscribeResponse {
        status: req Status = 3 "Status",
        link: req LinkTupleId = 13 "Link identifier",
        events: opt EventList = 5 "MIH event list",
    }
);

// --- Event service (indications) --------------------------------------------

body!(
    /// MIH_Link_Detected.indication.
    LinkDetectedIndication {
        detected: req List<LinkDetInfo> = 58 "Link detected info list",
    }
);

body!(
    /// MIH_Link_Up.indication.
    LinkUpIndication {
        link: req LinkTupleId = 13 "Link identifier",
        old_access_router: opt LinkAddr = 15 "Old access router",
        new_access_router: opt LinkAddr = 16 "New access router",
        ip_renewal: opt bool = 17 "IP renewal flag",
        mobility_management: opt IpMobMgmt = 18 "Mobility management support",
    }
);

body!(
    /// MIH_Link_Down.indication.
    LinkDownIndication {
        link: req LinkTupleId = 13 "Link identifier",
        old_access_router: opt LinkAddr = 15 "Old access router",
        reason: req LinkDnReason = 20 "Link down reason code",
    }
);

body!(
    /// MIH_Link_Going_Down.indication.
    LinkGoingDownIndication {
        link: req LinkTupleId = 13 "Link identifier",
        /// Expected time until the link goes down, ms.
        time_interval: req u16 = 21 "Time interval",
        reason: req LinkGdReason = 22 "Link going down reason",
    }
);

body!(
    /// MIH_Link_Handover_Imminent.indication. The access router TLVs are
    /// accepted when absent.
    LinkHandoverImminentIndication {
        link: req LinkTupleId = 13 "Link identifier",
        new_link: req LinkTupleId = 14 "New link identifier",
        old_access_router: opt LinkAddr = 15 "Old access router",
        new_access_router: opt LinkAddr = 16 "New access router",
    }
);

body!(
    /// MIH_Link_Handover_Complete.indication.
    LinkHandoverCompleteIndication {
        link: req LinkTupleId = 13 "Link identifier",
        new_link: req LinkTupleId = 14 "New link identifier",
        old_access_router: opt LinkAddr = 15 "Old access router",
        new_access_router: opt LinkAddr = 16 "New access router",
        status: req Status = 3 "Status",
    }
);

// --- Command service (network-initiated handover) ---------------------------

body!(
    /// MIH_Net_HO_Commit.request: the serving network commits the MN to a target.
    NetHoCommitRequest {
        link_type: req LinkType = 4 "Link type",
        targets: req List<TgtNetInfo> = 56 "List of target network info",
        assigned_resources: req AsgnResSet = 57 "Assigned resource set",
        /// Execution delay, ms.
        time_interval: req u16 = 21 "Time interval",
        link_actions: opt List<LinkActionReq> = 38 "Link actions list",
    }
);

body!(
    /// MIH_Net_HO_Commit.response.
    NetHoCommitResponse {
        status: req Status = 3 "Status",
        link_type: opt LinkType = 4 "Link type",
        target: opt TgtNetInfo = 55 "Target network info",
        link_action_results: opt List<LinkActionRsp> = 39 "Link actions result list",
    }
);

body!(
    /// MIH_N2N_HO_Query_Resources.request. TLV 52 is accepted before TLV 33
    /// (some readings of the standard carry it) and emitted only when set.
    N2nHoQueryResourcesRequest {
        mn_mihf_id: opt MihfId = 52 "MN MIHF ID",
        query: req QosList = 33 "Handover resource query list",
        ip_cfg_methods: opt IpCfgMethods = 19 "IP address configuration methods",
        dhcp_server: opt TransportAddr = 36 "DHCP server address",
        fa_addr: opt TransportAddr = 37 "FA address",
        access_router: opt TransportAddr = 35 "Access router address",
        link_ids: opt List<LinkId> = 25 "Link identifier list",
    }
);

body!(
    /// MIH_N2N_HO_Query_Resources.response.
    N2nHoQueryResourcesResponse {
        status: req Status = 3 "Status",
        resource_status: opt bool = 41 "Resource status",
        preferred_links: opt List<RqResult> = 32 "Preferred link list",
    }
);

body!(
    /// MIH_N2N_HO_Commit.request: the serving network asks the target network
    /// to prepare resources for the MN.
    N2nHoCommitRequest {
        mn_mihf_id: req MihfId = 52 "MN MIHF ID",
        mn_link_id: req LinkId = 59 "MN link ID",
        poa: req LinkAddr = 60 "PoA",
        /// Mandatory in IEEE 802.21-2008, but ODTONE 0.6 sends the request
        /// without it, so its absence is accepted on decode. Set it when
        /// sending.
        requested_resources: opt ReqResSet = 63 "Requested resource set",
    }
);

body!(
    /// MIH_N2N_HO_Commit.response.
    N2nHoCommitResponse {
        status: req Status = 3 "Status",
        mn_mihf_id: req MihfId = 52 "MN MIHF ID",
        link: opt LinkTupleId = 13 "Link identifier",
        assigned_resources: opt AsgnResSet = 57 "Assigned resource set",
    }
);

body!(
    /// MIH_N2N_HO_Complete.request.
    N2nHoCompleteRequest {
        mn_mihf_id: req MihfId = 52 "MN MIHF ID",
        link: req LinkTupleId = 13 "Link identifier",
        new_link: req LinkTupleId = 14 "New link identifier",
        result: req HoResult = 40 "Handover result",
    }
);

body!(
    /// MIH_N2N_HO_Complete.response.
    N2nHoCompleteResponse {
        status: req Status = 3 "Status",
        mn_mihf_id: req MihfId = 52 "MN MIHF ID",
        link: req LinkTupleId = 13 "Link identifier",
        new_link: req LinkTupleId = 14 "New link identifier",
        resource_retention: opt bool = 42 "Resource retention status",
    }
);

// --- Dispatch ------------------------------------------------------------------

macro_rules! primitives {
    ($(
        $variant:ident($body:ident) : $sid:ident $aid:literal $base:literal [$($op:ident),+];
    )*) => {
        /// The typed body of a message.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Body {
            $($variant($body),)*
            /// A pure acknowledgement (ACK-Rsp set, only the two ID TLVs).
            Ack,
            /// A message this codec does not type; its TLVs are all in
            /// [`Message::extra`].
            Unknown,
        }

        impl Body {
            fn decode(mid: Mid, d: &mut BodyDecoder<'_>) -> Result<Option<Body>, Error> {
                $(
                    if mid.sid() == ServiceId::$sid && mid.aid() == $aid
                        && [$(Opcode::$op),+].contains(&mid.opcode())
                    {
                        return $body::decode_body(d).map(|b| Some(Body::$variant(b)));
                    }
                )*
                Ok(None)
            }

            fn emit(&self, e: &mut Emitter<'_>) {
                match self {
                    $(Body::$variant(b) => b.emit_body(e),)*
                    Body::Ack | Body::Unknown => {}
                }
            }

            /// The TLV order of the body, if it is typed.
            pub fn tlv_order(&self) -> &'static [(u8, &'static str, bool)] {
                match self {
                    $(Body::$variant(_) => $body::TLVS,)*
                    Body::Ack | Body::Unknown => &[],
                }
            }
        }

        /// The primitive name (without the `.request` suffix) of a MID, if known.
        pub fn primitive_name(mid: Mid) -> Option<&'static str> {
            $(
                if mid.sid() == ServiceId::$sid && mid.aid() == $aid {
                    return Some($base);
                }
            )*
            None
        }

        /// Full names of the known message forms, e.g.
        /// `("MIH_N2N_HO_Commit.request", 0x3409)`.
        pub fn message_forms() -> Vec<(String, Mid)> {
            let mut v = Vec::new();
            $($(
                v.push((
                    format!("{}.{}", $base, Opcode::$op.suffix()),
                    Mid::new(ServiceId::$sid, Opcode::$op, $aid),
                ));
            )+)*
            v
        }
    };
}

primitives! {
    CapabilityDiscoverRequest(CapabilityDiscoverRequest): MANAGEMENT 1 "MIH_Capability_Discover" [Request, Indication];
    CapabilityDiscoverResponse(CapabilityDiscoverResponse): MANAGEMENT 1 "MIH_Capability_Discover" [Response, Confirm];
    RegisterRequest(RegisterRequest): MANAGEMENT 2 "MIH_Register" [Request, Indication];
    RegisterResponse(RegisterResponse): MANAGEMENT 2 "MIH_Register" [Response, Confirm];
    DeRegisterRequest(DeRegisterRequest): MANAGEMENT 3 "MIH_DeRegister" [Request, Indication];
    DeRegisterResponse(DeRegisterResponse): MANAGEMENT 3 "MIH_DeRegister" [Response, Confirm];
    EventSubscribeRequest(EventSubscribeRequest): MANAGEMENT 4 "MIH_Event_Subscribe" [Request, Indication];
    EventSubscribeResponse(EventSubscribeResponse): MANAGEMENT 4 "MIH_Event_Subscribe" [Response, Confirm];
    EventUnsubscribeRequest(EventUnsubscribeRequest): MANAGEMENT 5 "MIH_Event_Unsubscribe" [Request, Indication];
    EventUnsubscribeResponse(EventUnsubscribeResponse): MANAGEMENT 5 "MIH_Event_Unsubscribe" [Response, Confirm];
    LinkDetected(LinkDetectedIndication): EVENT 1 "MIH_Link_Detected" [Indication];
    LinkUp(LinkUpIndication): EVENT 2 "MIH_Link_Up" [Indication];
    LinkDown(LinkDownIndication): EVENT 3 "MIH_Link_Down" [Indication];
    LinkGoingDown(LinkGoingDownIndication): EVENT 6 "MIH_Link_Going_Down" [Indication];
    LinkHandoverImminent(LinkHandoverImminentIndication): EVENT 7 "MIH_Link_Handover_Imminent" [Indication];
    LinkHandoverComplete(LinkHandoverCompleteIndication): EVENT 8 "MIH_Link_Handover_Complete" [Indication];
    N2nHoQueryResourcesRequest(N2nHoQueryResourcesRequest): COMMAND 6 "MIH_N2N_HO_Query_Resources" [Request, Indication];
    N2nHoQueryResourcesResponse(N2nHoQueryResourcesResponse): COMMAND 6 "MIH_N2N_HO_Query_Resources" [Response, Confirm];
    NetHoCommitRequest(NetHoCommitRequest): COMMAND 8 "MIH_Net_HO_Commit" [Request, Indication];
    NetHoCommitResponse(NetHoCommitResponse): COMMAND 8 "MIH_Net_HO_Commit" [Response, Confirm];
    N2nHoCommitRequest(N2nHoCommitRequest): COMMAND 9 "MIH_N2N_HO_Commit" [Request, Indication];
    N2nHoCommitResponse(N2nHoCommitResponse): COMMAND 9 "MIH_N2N_HO_Commit" [Response, Confirm];
    N2nHoCompleteRequest(N2nHoCompleteRequest): COMMAND 11 "MIH_N2N_HO_Complete" [Request, Indication];
    N2nHoCompleteResponse(N2nHoCompleteResponse): COMMAND 11 "MIH_N2N_HO_Complete" [Response, Confirm];
}

/// Names used in errors: `<primitive>.<opcode>`, for every known form.
fn static_name(mid: Mid) -> &'static str {
    macro_rules! names {
        ($($base:literal),*) => {{
            $(
                if primitive_name(mid) == Some($base) {
                    return match mid.opcode() {
                        Opcode::Confirm => concat!($base, ".confirm"),
                        Opcode::Request => concat!($base, ".request"),
                        Opcode::Response => concat!($base, ".response"),
                        Opcode::Indication => concat!($base, ".indication"),
                    };
                }
            )*
            "unknown MIH message"
        }};
    }
    names!(
        "MIH_Capability_Discover",
        "MIH_Register",
        "MIH_DeRegister",
        "MIH_Event_Subscribe",
        "MIH_Event_Unsubscribe",
        "MIH_Link_Detected",
        "MIH_Link_Up",
        "MIH_Link_Down",
        "MIH_Link_Going_Down",
        "MIH_Link_Handover_Imminent",
        "MIH_Link_Handover_Complete",
        "MIH_N2N_HO_Query_Resources",
        "MIH_Net_HO_Commit",
        "MIH_N2N_HO_Commit",
        "MIH_N2N_HO_Complete"
    )
}

/// A decoded (or built) MIH message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The header; `payload_len` is recomputed by [`Message::emit`].
    pub header: Header,
    pub source: MihfId,
    pub destination: MihfId,
    pub body: Body,
    /// Runs of TLVs the body does not define, in payload order.
    pub extra: Vec<RawTlvs>,
}

impl Message {
    /// A message with a version-1 header and no flags.
    pub fn new(mid: Mid, tid: u16, source: MihfId, destination: MihfId, body: Body) -> Message {
        Message {
            header: Header::new(mid, tid),
            source,
            destination,
            body,
            extra: Vec::new(),
        }
    }

    /// Decode the typed message carried by a validated frame.
    ///
    /// Allocation-free for typed messages whose TLVs are all known (the
    /// `extra` vector stays empty) when the frame's buffer is shared
    /// (`Bytes::from_static`, or a buffer that was already cloned or split, as
    /// every `BytesMut::split().freeze()` receive buffer is).
    pub fn decode(frame: &Frame) -> Result<Message, Error> {
        let header = frame.header();
        if header.is_fragment() {
            return Err(Error::Fragment {
                frag_no: header.frag_no,
                more: header.more_frag,
            });
        }
        let name = static_name(header.mid);
        let base = frame.as_bytes();
        let mut tlvs = TlvIter::new(&base[HEADER_LEN..]);
        let source = id_tlv(base, &mut tlvs, name, TLV_SOURCE_ID, "Source MIHF ID")?;
        let destination = id_tlv(
            base,
            &mut tlvs,
            name,
            TLV_DESTINATION_ID,
            "Destination MIHF ID",
        )?;

        let mut extra = Vec::new();
        // A pure ACK: ACK-Rsp set and nothing after the IDs.
        if header.ack_rsp && tlvs.clone().next().is_none() {
            return Ok(Message {
                header,
                source,
                destination,
                body: Body::Ack,
                extra,
            });
        }
        let mut d = BodyDecoder {
            base,
            tlvs,
            name,
            extra: &mut extra,
            index: 2,
            cursor: 0,
        };
        let body = match Body::decode(header.mid, &mut d)? {
            Some(b) => b,
            None => {
                while let Some(t) = d.next()? {
                    d.keep_unknown(t);
                }
                Body::Unknown
            }
        };
        Ok(Message {
            header,
            source,
            destination,
            body,
            extra,
        })
    }

    /// Parse and decode a whole frame.
    pub fn from_bytes(bytes: Bytes) -> Result<Message, Error> {
        Message::decode(&Frame::parse(bytes)?)
    }

    /// The message name, e.g. `MIH_N2N_HO_Commit.request`; pure ACKs get an
    /// ` (ACK)` suffix and unknown messages show their MID.
    pub fn name(&self) -> String {
        let mid = self.header.mid;
        match (&self.body, primitive_name(mid)) {
            (Body::Ack, Some(base)) => format!("{base}.{} (ACK)", mid.opcode().suffix()),
            (Body::Ack, None) => format!("ACK (MID {:#06x})", mid.0),
            (_, Some(base)) => format!("{base}.{}", mid.opcode().suffix()),
            (_, None) => format!("unknown (MID {:#06x})", mid.0),
        }
    }

    /// Append the frame to `out`. Fails only when the payload exceeds the
    /// 65,535 octets a single frame can carry.
    pub fn emit(&self, out: &mut BytesMut) -> Result<(), Error> {
        let start = out.len();
        self.header.emit(out);
        let mut e = Emitter {
            out,
            extra: &self.extra,
            next_extra: 0,
            index: 0,
        };
        e.tlv(TLV_SOURCE_ID, &self.source);
        e.tlv(TLV_DESTINATION_ID, &self.destination);
        self.body.emit(&mut e);
        e.finish();
        let payload = out.len() - start - HEADER_LEN;
        let Ok(len) = u16::try_from(payload) else {
            out.truncate(start);
            return Err(Error::PayloadTooLarge { len: payload });
        };
        out[start + 6..start + 8].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }

    /// Emit into a fresh buffer.
    pub fn to_bytes(&self) -> Result<Bytes, Error> {
        let mut out = BytesMut::with_capacity(128);
        self.emit(&mut out)?;
        Ok(out.freeze())
    }
}

fn id_tlv(
    base: &Bytes,
    tlvs: &mut TlvIter<'_>,
    message: &'static str,
    expected: u8,
    name: &'static str,
) -> Result<MihfId, Error> {
    match tlvs.next() {
        Some(t) if t.ty == expected => {
            MihfId::decode_exact(base, t.value).map_err(|error| Error::BadValue {
                message,
                tlv: expected,
                name,
                error,
            })
        }
        Some(t) => Err(Error::MissingIdTlv {
            message,
            expected,
            name,
            found: Some(t.ty),
        }),
        None => Err(tlvs.error().unwrap_or(Error::MissingIdTlv {
            message,
            expected,
            name,
            found: None,
        })),
    }
}
