//! X2AP handover trigger (3GPP TS 36.423).
//!
//! The eNodeB's X2 signalling tells the eNBC when one of its UEs is about to
//! leave: the source eNB sends a **HandoverRequest** (the UE, its target cell
//! and bearers), the target answers **HandoverRequestAcknowledge** (the
//! moment to move the UE's services), and **UEContextRelease** ends the
//! handover; **HandoverPreparationFailure** and **HandoverCancel** abort it.
//!
//! * [`decode`] turns one APER-encoded X2AP PDU into a [`Pdu`]: those five
//!   messages are decoded to the IEs the trigger needs, every other procedure is
//!   recognised (procedure code and message type) and left alone, except that
//!   the Old/New eNB UE X2AP IDs of every UE-associated message that has them
//!   are read ([`Pdu::ue_x2ap_ids`]). Malformed input
//!   is an [`X2apError`] naming the message and IE; no input panics, and no
//!   length in the input makes the decoder allocate more than the input's size
//!   allows (see `mih-user/README.md`, "X2AP trigger").
//! * A procedure code or message type TS 36.423 does not define is reported
//!   by [`Pdu::not_comprehended`], with the [`ReceiverAction`] of TS 36.423
//!   §10.3.4.1 that its criticality asks of a receiving eNB
//!   ([`Pdu::receiver_action`], [`Criticality::unknown_procedure_action`]).
//! * [`X2Trigger`] is the sans-IO core: `handle_pdu(now, bytes)` queues
//!   [`X2Event`]s (prepared, triggered, forgotten, released, unknown UE or
//!   target, ignored, malformed) that `poll_event()` hands out; a bounded
//!   table of pending UEs with timeouts driven by `poll_timeout` /
//!   `handle_timeout`; [`X2Counters`].
//! * [`NeighbourTable`] and [`UeTable`] resolve the target cell to the
//!   destination eNBC's MIHF ID and the UE to its IP address; both are fed by
//!   configuration ([`X2TriggerConfig`], serde/TOML) and by methods.
//! * [`build`] encodes HandoverRequest and HandoverRequestAcknowledge PDUs
//!   from typed parameters (any UE X2AP IDs and target cell), for demos and
//!   tests that drive the trigger with real X2AP.
//! * [`sctp`] extracts X2AP PDUs (SCTP DATA chunks with PPID 27) from captured
//!   packets and pcap/pcapng files; [`framing`] splits the length-prefixed TCP
//!   tap stream. The tokio drivers live in [`crate::tap`] (feature `daemon`).
//!
//! ```
//! use std::time::Instant;
//! use mih_user::x2ap::{X2Event, X2Trigger, X2TriggerConfig};
//!
//! let config: X2TriggerConfig = toml::from_str(r#"
//!     [[neighbours]]
//!     plmn = "001-01"
//!     enb_id = 0x1a2b3
//!     mihf_id = "enbc-b"
//!
//!     [[ues]]
//!     ul_gtp_teid = 0x101
//!     ue_address = "10.45.0.7"
//! "#).unwrap();
//! let mut trigger = X2Trigger::new(config).unwrap();
//! # let vector = |name: &str| -> Vec<u8> {
//! #     let path = format!("{}/../conformance/vectors/x2ap/{name}.json", env!("CARGO_MANIFEST_DIR"));
//! #     let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
//! #     hex::decode(v["hex"].as_str().unwrap()).unwrap()
//! # };
//! # let (request, ack) = (vector("handover_request"), vector("handover_request_acknowledge"));
//! let now = Instant::now();
//! trigger.handle_pdu(now, &request);      // HandoverRequest: UE 17 prepared
//! assert!(matches!(trigger.poll_event(), Some(X2Event::HandoverPrepared(_))));
//! trigger.handle_pdu(now, &ack);
//! let mut events = Vec::new();
//! while let Some(e) = trigger.poll_event() {
//!     events.push(e);
//! }
//! match &events[..] {
//!     [X2Event::HandoverTriggered(t)] => {
//!         assert_eq!(t.ue_address.to_string(), "10.45.0.7");
//!         assert_eq!(t.target_mihf_id, "enbc-b");
//!     }
//!     other => panic!("{other:?}"),
//! }
//! ```

pub mod asn;
pub mod build;
pub mod framing;
mod handling;
mod pdu;
mod procedures;
pub mod sctp;
mod tables;
mod trigger;

pub use handling::{NotComprehended, ReceiverAction};
pub use pdu::{
    decode, ie_id, Cause, Criticality, ERabAdmitted, ERabToBeSetup, Ecgi, GtpTunnel, Gummei,
    HandoverCancel, HandoverPreparationFailure, HandoverRequest, HandoverRequestAcknowledge,
    Message, MessageType, Pdu, Plmn, TransportLayerAddress, UeContextRelease, UeX2apIds, X2apError,
    MAX_PDU_LEN, PROC_HANDOVER_CANCEL, PROC_HANDOVER_PREPARATION, PROC_UE_CONTEXT_RELEASE,
};
pub use procedures::{message_name, procedure_name, ue_id_ies, Presence, UeIdIes};
pub use tables::{
    NeighbourConfig, NeighbourTable, TableError, TargetKey, UeConfig, UeKey, UeTable,
};
pub use trigger::{
    ForgetReason, HandoverTrigger, PendingUe, Phase, Released, UnknownTarget, UnknownUe,
    UnknownUeReason, X2Counters, X2Event, X2Trigger, X2TriggerConfig,
};
