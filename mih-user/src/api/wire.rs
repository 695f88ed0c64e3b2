//! Sans-IO codec of the Service Mobility API protocol (version 1).
//!
//! No sockets, no runtime: [`encode`] appends one frame to a [`BytesMut`],
//! [`decode_frame`] takes one frame off the front of a receive buffer (or
//! says it needs more octets), [`decode_payload`] decodes one frame body
//! without its length prefix. `mih-user/API.md` is the normative
//! description; this module follows it field by field.
//!
//! Every length is checked against the octets present before anything is
//! sliced or allocated; the declared frame length is checked against the
//! receiver's limit before the buffer grows. Variable parts (context data)
//! are zero-copy [`Bytes`] slices of the received frame.
//!
//! ```
//! use bytes::BytesMut;
//! use mih_user::api::wire::{decode_frame, encode, Frame, Message, RegisterService};
//!
//! let frame = Frame {
//!     request_id: 7,
//!     message: Message::RegisterService(RegisterService { service_id: "video".into(), fpt: 0xFF01 }),
//! };
//! let mut buf = BytesMut::new();
//! encode(&frame, &mut buf).unwrap();
//! assert_eq!(&buf[..4], &[0, 0, 0, 14]); // length of what follows
//! let decoded = decode_frame(&mut buf, 1 << 16).unwrap().unwrap();
//! assert_eq!(decoded, frame);
//! assert!(buf.is_empty());
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Protocol version implemented here.
pub const PROTOCOL_VERSION: u16 = 1;
/// Magic that opens the `Hello` and `HelloAck` bodies ("SMAP").
pub const MAGIC: [u8; 4] = *b"SMAP";
/// Size of the length prefix.
pub const LENGTH_PREFIX_LEN: usize = 4;
/// Type octet and request ID: the smallest frame length.
pub const MESSAGE_HEADER_LEN: usize = 5;
/// Default largest frame length (octets after the length prefix): 4 MiB.
pub const DEFAULT_MAX_FRAME: u32 = 4 * 1024 * 1024;
/// Smallest `max_frame` a peer may announce in `Hello`/`HelloAck`.
pub const MIN_MAX_FRAME: u32 = 4096;
/// Longest service identifier (UTF-8 octets).
pub const MAX_SERVICE_ID_LEN: usize = 255;
/// Most connections one `RegisterUser`/`ImportContext` may list.
pub const MAX_CONNECTIONS_PER_USER: usize = 1024;

/// One TCP connection of a UE with a service: the 4-tuple as the service
/// sees it (client = the UE's address and port, server = the service's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Connection {
    /// UE side.
    pub client: SocketAddr,
    /// Service side.
    pub server: SocketAddr,
}

/// `Hello` (client → server, first frame on a connection).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// Lowest protocol version the client speaks.
    pub min_version: u16,
    /// Highest protocol version the client speaks.
    pub max_version: u16,
    /// Largest frame the client accepts (octets after the length prefix).
    pub max_frame: u32,
    /// Free-form client name for logs.
    pub client_name: String,
}

/// `HelloAck` (server → client).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HelloAck {
    /// Version chosen for this connection.
    pub version: u16,
    /// Largest frame the server accepts.
    pub max_frame: u32,
    /// Free-form server name for logs.
    pub server_name: String,
}

/// `RegisterService`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterService {
    /// Service identifier, 1..=255 UTF-8 octets, unique on the node.
    pub service_id: String,
    /// Feature Profile Type under which this service's contexts travel in
    /// CXTP (see [`crate::api::ServiceContext`]).
    pub fpt: u16,
}

/// `DeregisterService`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeregisterService {
    /// Service identifier.
    pub service_id: String,
}

/// `RegisterUser`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterUser {
    /// Service identifier.
    pub service_id: String,
    /// UE address.
    pub ue: IpAddr,
    /// Replace the connections of an already registered user instead of
    /// failing with `DUPLICATE_USER` (flag bit 0).
    pub replace: bool,
    /// The UE's TCP connections with the service.
    pub connections: Vec<Connection>,
}

/// `DeregisterUser`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeregisterUser {
    /// Service identifier.
    pub service_id: String,
    /// UE address.
    pub ue: IpAddr,
}

/// Status of a service's answer to an export or import event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReplyStatus {
    /// 0: done.
    Ok,
    /// 1: refused (see the reason).
    Refused,
    /// 2: the context could not be understood (import).
    MalformedContext,
    /// 3: no capacity for the UE.
    NoCapacity,
    /// Any other value (treated as a refusal).
    Other(u8),
}

impl ReplyStatus {
    /// From the wire value.
    pub fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Ok,
            1 => Self::Refused,
            2 => Self::MalformedContext,
            3 => Self::NoCapacity,
            v => Self::Other(v),
        }
    }
    /// The wire value.
    pub fn to_u8(self) -> u8 {
        match self {
            Self::Ok => 0,
            Self::Refused => 1,
            Self::MalformedContext => 2,
            Self::NoCapacity => 3,
            Self::Other(v) => v,
        }
    }
    /// Whether this is [`ReplyStatus::Ok`] (wire value 0).
    pub fn is_ok(self) -> bool {
        self.to_u8() == 0
    }
}

/// `ExportContext`: a service's answer to `ExportRequested`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportContext {
    /// Request ID of the `ExportRequested` event answered.
    pub event_id: u32,
    /// Service identifier (as in the event).
    pub service_id: String,
    /// UE address (as in the event).
    pub ue: IpAddr,
    /// `Ok` with the context in `data`, or a refusal.
    pub status: ReplyStatus,
    /// Why, for a refusal (may be empty).
    pub reason: String,
    /// The service's opaque context for the UE.
    pub data: Bytes,
}

/// `ImportContext`: a service's answer to `ImportRequested`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportContext {
    /// Request ID of the `ImportRequested` event answered.
    pub event_id: u32,
    /// Service identifier (as in the event).
    pub service_id: String,
    /// UE address (as in the event).
    pub ue: IpAddr,
    /// `Ok` (imported; the UE becomes a registered user of the service with
    /// `connections`) or a refusal.
    pub status: ReplyStatus,
    /// Why, for a refusal (may be empty).
    pub reason: String,
    /// The UE's connections with the service on this node, if already known.
    pub connections: Vec<Connection>,
}

/// Error codes of the `Error` message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 1: no common protocol version (the connection is closed).
    UnsupportedVersion,
    /// 2: a request came before `Hello` (the connection is closed).
    HandshakeRequired,
    /// 3: a message the server does not accept from a client, or a second `Hello`.
    UnexpectedMessage,
    /// 4: a field value is not acceptable (empty service ID, UE address
    /// that does not match a connection, ...).
    InvalidArgument,
    /// 5: the service ID is already registered.
    DuplicateService,
    /// 6: no such service.
    UnknownService,
    /// 7: the service was registered over another connection.
    NotOwner,
    /// 8: the UE is already a user of the service.
    DuplicateUser,
    /// 9: the UE is not a user of the service.
    UnknownUser,
    /// 10: no pending event with this ID (answered already, timed out, or never sent).
    UnknownEvent,
    /// 11: the event exists but is of another kind, service or UE.
    EventMismatch,
    /// 12: the FPT cannot carry a service context.
    InvalidFpt,
    /// 13: a configured limit (services, users, connections) is reached.
    LimitReached,
    /// 14: the frame could not be decoded (the connection is closed).
    MalformedFrame,
    /// 15: the server is shutting down (the connection is closed).
    ShuttingDown,
    /// 16: the client did not keep up with events (the connection is closed).
    SlowConsumer,
    /// Any other value.
    Other(u16),
}

impl ErrorCode {
    /// From the wire value.
    pub fn from_u16(v: u16) -> Self {
        use ErrorCode::*;
        match v {
            1 => UnsupportedVersion,
            2 => HandshakeRequired,
            3 => UnexpectedMessage,
            4 => InvalidArgument,
            5 => DuplicateService,
            6 => UnknownService,
            7 => NotOwner,
            8 => DuplicateUser,
            9 => UnknownUser,
            10 => UnknownEvent,
            11 => EventMismatch,
            12 => InvalidFpt,
            13 => LimitReached,
            14 => MalformedFrame,
            15 => ShuttingDown,
            16 => SlowConsumer,
            v => Other(v),
        }
    }
    /// The wire value.
    pub fn to_u16(self) -> u16 {
        use ErrorCode::*;
        match self {
            UnsupportedVersion => 1,
            HandshakeRequired => 2,
            UnexpectedMessage => 3,
            InvalidArgument => 4,
            DuplicateService => 5,
            UnknownService => 6,
            NotOwner => 7,
            DuplicateUser => 8,
            UnknownUser => 9,
            UnknownEvent => 10,
            EventMismatch => 11,
            InvalidFpt => 12,
            LimitReached => 13,
            MalformedFrame => 14,
            ShuttingDown => 15,
            SlowConsumer => 16,
            Other(v) => v,
        }
    }
    /// Upper-case name as in API.md.
    pub fn name(self) -> &'static str {
        use ErrorCode::*;
        match self {
            UnsupportedVersion => "UNSUPPORTED_VERSION",
            HandshakeRequired => "HANDSHAKE_REQUIRED",
            UnexpectedMessage => "UNEXPECTED_MESSAGE",
            InvalidArgument => "INVALID_ARGUMENT",
            DuplicateService => "DUPLICATE_SERVICE",
            UnknownService => "UNKNOWN_SERVICE",
            NotOwner => "NOT_OWNER",
            DuplicateUser => "DUPLICATE_USER",
            UnknownUser => "UNKNOWN_USER",
            UnknownEvent => "UNKNOWN_EVENT",
            EventMismatch => "EVENT_MISMATCH",
            InvalidFpt => "INVALID_FPT",
            LimitReached => "LIMIT_REACHED",
            MalformedFrame => "MALFORMED_FRAME",
            ShuttingDown => "SHUTTING_DOWN",
            SlowConsumer => "SLOW_CONSUMER",
            Other(_) => "OTHER",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.to_u16())
    }
}

/// `Error` (server → client).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorMessage {
    /// What went wrong.
    pub code: ErrorCode,
    /// Human-readable detail.
    pub message: String,
}

/// `ExportRequested` event (its event ID is the frame's request ID).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportRequested {
    /// Service asked.
    pub service_id: String,
    /// UE whose context is wanted.
    pub ue: IpAddr,
    /// How long the server waits for the answer, in milliseconds.
    pub timeout_ms: u32,
}

/// `ImportRequested` event (its event ID is the frame's request ID).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportRequested {
    /// Service that should import.
    pub service_id: String,
    /// UE arriving.
    pub ue: IpAddr,
    /// FPT the context travelled under.
    pub fpt: u16,
    /// The context as the source service exported it.
    pub data: Bytes,
}

/// Which end of a migration this node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// 0: the UE is leaving this node (the service exported).
    Source,
    /// 1: the UE is arriving at this node (the service imported).
    Destination,
}

/// How a migration ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// 0: the context is installed at the destination; the UE has moved.
    Committed,
    /// 1: the migration failed; the source keeps serving the UE.
    RolledBack,
}

/// `MigrationOutcome` event (its event ID is the frame's request ID; no answer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigrationOutcome {
    /// Service told.
    pub service_id: String,
    /// UE concerned.
    pub ue: IpAddr,
    /// This node's role.
    pub role: Role,
    /// Committed or rolled back.
    pub outcome: Outcome,
    /// Cause, for logs (may be empty).
    pub cause: String,
}

/// The message table: each message's variant, type code constant and
/// value, written once. It defines [`message_type`], [`Message`],
/// [`Message::type_code`] and [`type_name`] (the name is the variant's).
macro_rules! messages {
    ($($(#[$doc:meta])* $variant:ident $(($body:ident))? = $code:ident $value:literal;)*) => {
        /// Message type codes (the first octet after the length prefix).
        pub mod message_type {
            $($(#[$doc])* pub const $code: u8 = $value;)*
        }

        /// Every message of protocol version 1.
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum Message {
            $(
                #[doc = concat!("`", stringify!($value), "`: ")]
                $(#[$doc])*
                $variant $(($body))?,
            )*
        }

        impl Message {
            /// The type code.
            pub fn type_code(&self) -> u8 {
                match self {
                    $(Message::$variant { .. } => message_type::$code,)*
                }
            }
        }

        /// Name of a message type code, if it is one.
        pub fn type_name(code: u8) -> Option<&'static str> {
            match code {
                $(message_type::$code => Some(stringify!($variant)),)*
                _ => None,
            }
        }
    };
}

messages! {
    /// Client → server: version handshake.
    Hello(Hello) = HELLO 0x01;
    /// Client → server: register a service.
    RegisterService(RegisterService) = REGISTER_SERVICE 0x02;
    /// Client → server: deregister a service.
    DeregisterService(DeregisterService) = DEREGISTER_SERVICE 0x03;
    /// Client → server: register (or update) a user of a service.
    RegisterUser(RegisterUser) = REGISTER_USER 0x04;
    /// Client → server: deregister a user of a service.
    DeregisterUser(DeregisterUser) = DEREGISTER_USER 0x05;
    /// Client → server: answer an `ExportRequested` event.
    ExportContext(ExportContext) = EXPORT_CONTEXT 0x06;
    /// Client → server: answer an `ImportRequested` event.
    ImportContext(ImportContext) = IMPORT_CONTEXT 0x07;
    /// Server → client: handshake accepted.
    HelloAck(HelloAck) = HELLO_ACK 0x41;
    /// Server → client: request succeeded (empty body).
    Ok = OK 0x42;
    /// Server → client: request failed (or, with request ID 0, the
    /// connection is being closed).
    Error(ErrorMessage) = ERROR 0x43;
    /// Server → client event: export the context of a UE.
    ExportRequested(ExportRequested) = EXPORT_REQUESTED 0x81;
    /// Server → client event: import a context for a UE.
    ImportRequested(ImportRequested) = IMPORT_REQUESTED 0x82;
    /// Server → client event: outcome of a migration.
    MigrationOutcome(MigrationOutcome) = MIGRATION_OUTCOME 0x83;
}

impl Message {
    /// The message name as in API.md.
    pub fn name(&self) -> &'static str {
        type_name(self.type_code()).unwrap_or("?")
    }
    /// Whether a client may send it.
    pub fn is_client_message(&self) -> bool {
        self.type_code() < 0x40
    }
}

/// One frame: a request ID and a message.
///
/// Requests carry an ID chosen by the client, echoed in the answer
/// (`HelloAck`, `Ok` or `Error`). Events carry an ID chosen by the server
/// (the event ID). ID 0 on an `Error` means "about the connection".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Request or event ID.
    pub request_id: u32,
    /// The message.
    pub message: Message,
}

impl Frame {
    /// Shorthand.
    pub fn new(request_id: u32, message: Message) -> Self {
        Frame {
            request_id,
            message,
        }
    }
}

/// Decoding errors. Each one names the message and field when known.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The length prefix exceeds the receiver's limit.
    #[error("frame length {len} exceeds the limit of {max} octets")]
    FrameTooLarge {
        /// Declared length.
        len: u32,
        /// Limit.
        max: u32,
    },
    /// The length prefix is smaller than the 5-octet message header.
    #[error("frame length {len} is shorter than the 5-octet message header")]
    FrameTooShort {
        /// Declared length.
        len: u32,
    },
    /// Unknown message type code.
    #[error("unknown message type {0:#04x}")]
    UnknownMessageType(u8),
    /// A field runs past the end of the frame.
    #[error("{message}: truncated {field}")]
    Truncated {
        /// Message name.
        message: &'static str,
        /// Field name.
        field: &'static str,
    },
    /// Octets left after the last field.
    #[error("{message}: {len} octets after the last field")]
    TrailingBytes {
        /// Message name.
        message: &'static str,
        /// How many.
        len: usize,
    },
    /// A string field is not UTF-8.
    #[error("{message}: {field} is not UTF-8")]
    InvalidUtf8 {
        /// Message name.
        message: &'static str,
        /// Field name.
        field: &'static str,
    },
    /// A field has a value the protocol does not define.
    #[error("{message}: invalid {field} value {value}")]
    InvalidValue {
        /// Message name.
        message: &'static str,
        /// Field name.
        field: &'static str,
        /// The value.
        value: u32,
    },
    /// `Hello`/`HelloAck` does not start with "SMAP".
    #[error("{message}: bad magic (not a Service Mobility API peer)")]
    BadMagic {
        /// Message name.
        message: &'static str,
    },
}

/// Encoding errors: a field does not fit its length field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A string, list or octet string is longer than its length field allows.
    #[error("{message}: {field} too long ({len})")]
    TooLong {
        /// Message name.
        message: &'static str,
        /// Field name.
        field: &'static str,
        /// Its length.
        len: usize,
    },
    /// The frame would exceed 2^32-1 octets.
    #[error("frame of {0} octets cannot be length-prefixed")]
    FrameTooLarge(usize),
}

/// Where the encoder writes: the frame buffer, or a counter (for
/// [`encoded_len`]), so that one encoder gives both the octets and their
/// number.
trait Sink {
    fn put_u8(&mut self, v: u8);
    fn put_u16(&mut self, v: u16);
    fn put_u32(&mut self, v: u32);
    fn put_slice(&mut self, s: &[u8]);
}

impl Sink for BytesMut {
    fn put_u8(&mut self, v: u8) {
        BufMut::put_u8(self, v)
    }
    fn put_u16(&mut self, v: u16) {
        BufMut::put_u16(self, v)
    }
    fn put_u32(&mut self, v: u32) {
        BufMut::put_u32(self, v)
    }
    fn put_slice(&mut self, s: &[u8]) {
        BufMut::put_slice(self, s)
    }
}

/// Counts the octets instead of writing them.
struct Count(usize);

impl Sink for Count {
    fn put_u8(&mut self, _: u8) {
        self.0 += 1
    }
    fn put_u16(&mut self, _: u16) {
        self.0 += 2
    }
    fn put_u32(&mut self, _: u32) {
        self.0 += 4
    }
    fn put_slice(&mut self, s: &[u8]) {
        self.0 += s.len()
    }
}

/// Octets [`encode`] writes for `frame` after the length prefix (the value
/// of the length prefix and what is compared with `max_frame`), counted by
/// the encoder itself without copying anything.
pub fn encoded_len(frame: &Frame) -> usize {
    let mut n = Count(0);
    // A field too long for its length field is still counted in full.
    let _ = encode_message(frame, &mut n);
    n.0
}

/// Writes the fields of one message. A field too long for its length
/// field is written anyway (its length truncated) and the first such error
/// kept, so that a count covers every field; [`encode`] then drops the
/// frame.
struct Writer<'a, O> {
    dst: &'a mut O,
    message: &'static str,
    err: Option<EncodeError>,
}

impl<O: Sink> Writer<'_, O> {
    fn too_long(&mut self, field: &'static str, len: usize) {
        self.err.get_or_insert(EncodeError::TooLong {
            message: self.message,
            field,
            len,
        });
    }
    fn str16(&mut self, s: &str, field: &'static str) {
        let len = u16::try_from(s.len()).unwrap_or_else(|_| {
            self.too_long(field, s.len());
            u16::MAX
        });
        self.dst.put_u16(len);
        self.dst.put_slice(s.as_bytes());
    }
    fn bytes32(&mut self, b: &[u8], field: &'static str) {
        let len = u32::try_from(b.len()).unwrap_or_else(|_| {
            self.too_long(field, b.len());
            u32::MAX
        });
        self.dst.put_u32(len);
        self.dst.put_slice(b);
    }
    fn ip(&mut self, ip: &IpAddr) {
        match ip {
            IpAddr::V4(a) => {
                self.dst.put_u8(4);
                self.dst.put_slice(&a.octets());
            }
            IpAddr::V6(a) => {
                self.dst.put_u8(6);
                self.dst.put_slice(&a.octets());
            }
        }
    }
    fn sockaddr(&mut self, a: &SocketAddr) {
        self.ip(&a.ip());
        self.dst.put_u16(a.port());
    }
    fn conns(&mut self, cs: &[Connection]) {
        let n = u16::try_from(cs.len()).unwrap_or_else(|_| {
            self.too_long("connections", cs.len());
            u16::MAX
        });
        self.dst.put_u16(n);
        for c in cs {
            self.sockaddr(&c.client);
            self.sockaddr(&c.server);
        }
    }
}

/// Append `frame` (length prefix included) to `dst`.
///
/// The length prefix is written as a placeholder and filled in from the
/// size of what was written. Fails only when a field does not fit its
/// length field; `dst` is then left as it was.
pub fn encode(frame: &Frame, dst: &mut BytesMut) -> Result<(), EncodeError> {
    let start = dst.len();
    dst.reserve(LENGTH_PREFIX_LEN + encoded_len(frame));
    BufMut::put_u32(dst, 0);
    let r = encode_message(frame, dst);
    let len = dst.len() - start - LENGTH_PREFIX_LEN;
    let r = match u32::try_from(len) {
        Err(_) => Err(EncodeError::FrameTooLarge(len)),
        Ok(len32) => {
            r.map(|()| dst[start..start + LENGTH_PREFIX_LEN].copy_from_slice(&len32.to_be_bytes()))
        }
    };
    if r.is_err() {
        dst.truncate(start);
    }
    r
}

/// Type, request ID and fields: everything after the length prefix.
fn encode_message<O: Sink>(frame: &Frame, dst: &mut O) -> Result<(), EncodeError> {
    let msg = &frame.message;
    dst.put_u8(msg.type_code());
    dst.put_u32(frame.request_id);
    let mut w = Writer {
        dst,
        message: msg.name(),
        err: None,
    };
    match msg {
        Message::Hello(m) => {
            w.dst.put_slice(&MAGIC);
            w.dst.put_u16(m.min_version);
            w.dst.put_u16(m.max_version);
            w.dst.put_u32(m.max_frame);
            w.str16(&m.client_name, "client name");
        }
        Message::HelloAck(m) => {
            w.dst.put_slice(&MAGIC);
            w.dst.put_u16(m.version);
            w.dst.put_u32(m.max_frame);
            w.str16(&m.server_name, "server name");
        }
        Message::RegisterService(m) => {
            w.str16(&m.service_id, "service id");
            w.dst.put_u16(m.fpt);
        }
        Message::DeregisterService(m) => w.str16(&m.service_id, "service id"),
        Message::RegisterUser(m) => {
            w.str16(&m.service_id, "service id");
            w.ip(&m.ue);
            w.dst.put_u8(u8::from(m.replace));
            w.conns(&m.connections);
        }
        Message::DeregisterUser(m) => {
            w.str16(&m.service_id, "service id");
            w.ip(&m.ue);
        }
        Message::ExportContext(m) => {
            w.dst.put_u32(m.event_id);
            w.str16(&m.service_id, "service id");
            w.ip(&m.ue);
            w.dst.put_u8(m.status.to_u8());
            w.str16(&m.reason, "reason");
            w.bytes32(&m.data, "data");
        }
        Message::ImportContext(m) => {
            w.dst.put_u32(m.event_id);
            w.str16(&m.service_id, "service id");
            w.ip(&m.ue);
            w.dst.put_u8(m.status.to_u8());
            w.str16(&m.reason, "reason");
            w.conns(&m.connections);
        }
        Message::Ok => {}
        Message::Error(m) => {
            w.dst.put_u16(m.code.to_u16());
            w.str16(&m.message, "message");
        }
        Message::ExportRequested(m) => {
            w.str16(&m.service_id, "service id");
            w.ip(&m.ue);
            w.dst.put_u32(m.timeout_ms);
        }
        Message::ImportRequested(m) => {
            w.str16(&m.service_id, "service id");
            w.ip(&m.ue);
            w.dst.put_u16(m.fpt);
            w.bytes32(&m.data, "data");
        }
        Message::MigrationOutcome(m) => {
            w.str16(&m.service_id, "service id");
            w.ip(&m.ue);
            w.dst.put_u8(match m.role {
                Role::Source => 0,
                Role::Destination => 1,
            });
            w.dst.put_u8(match m.outcome {
                Outcome::Committed => 0,
                Outcome::RolledBack => 1,
            });
            w.str16(&m.cause, "cause");
        }
    }
    match w.err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Take one frame off the front of `src`.
///
/// * `Ok(None)`: more octets are needed (`src` is untouched except that its
///   capacity may grow to hold the announced frame, which is at most
///   `max_frame` octets);
/// * `Ok(Some(frame))`: the frame's octets have been removed from `src`;
/// * `Err(_)`: the stream is not valid; the caller closes the connection.
///   When the error is about the length prefix nothing has been consumed.
pub fn decode_frame(src: &mut BytesMut, max_frame: u32) -> Result<Option<Frame>, DecodeError> {
    let Some(len) = peek_frame_len(src, max_frame)? else {
        return Ok(None);
    };
    let total = LENGTH_PREFIX_LEN + len as usize;
    if src.len() < total {
        src.reserve(total - src.len());
        return Ok(None);
    }
    src.advance(LENGTH_PREFIX_LEN);
    let payload = src.split_to(len as usize).freeze();
    decode_payload(payload).map(Some)
}

/// Validate the length prefix at the front of `buf` (if 4 octets are
/// there) against `max_frame` and the 5-octet minimum.
pub fn peek_frame_len(buf: &[u8], max_frame: u32) -> Result<Option<u32>, DecodeError> {
    let Some(prefix) = buf.get(..LENGTH_PREFIX_LEN) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    if len < MESSAGE_HEADER_LEN as u32 {
        return Err(DecodeError::FrameTooShort { len });
    }
    if len > max_frame {
        return Err(DecodeError::FrameTooLarge {
            len,
            max: max_frame,
        });
    }
    Ok(Some(len))
}

struct Reader {
    buf: Bytes,
    pos: usize,
    message: &'static str,
}

type R<T> = Result<T, DecodeError>;

impl Reader {
    fn take(&mut self, n: usize, field: &'static str) -> R<Bytes> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(DecodeError::Truncated {
                message: self.message,
                field,
            })?;
        let b = self.buf.slice(self.pos..end);
        self.pos = end;
        Ok(b)
    }
    fn array<const N: usize>(&mut self, field: &'static str) -> R<[u8; N]> {
        let b = self.take(N, field)?;
        let mut a = [0u8; N];
        a.copy_from_slice(&b);
        Ok(a)
    }
    fn u8(&mut self, field: &'static str) -> R<u8> {
        Ok(self.array::<1>(field)?[0])
    }
    fn u16(&mut self, field: &'static str) -> R<u16> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }
    fn u32(&mut self, field: &'static str) -> R<u32> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }
    fn str16(&mut self, field: &'static str) -> R<String> {
        let len = self.u16(field)? as usize;
        let b = self.take(len, field)?;
        match std::str::from_utf8(&b) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(DecodeError::InvalidUtf8 {
                message: self.message,
                field,
            }),
        }
    }
    fn bytes32(&mut self, field: &'static str) -> R<Bytes> {
        let len = self.u32(field)? as usize;
        self.take(len, field)
    }
    fn ip(&mut self, field: &'static str) -> R<IpAddr> {
        match self.u8(field)? {
            4 => Ok(IpAddr::V4(Ipv4Addr::from(self.array::<4>(field)?))),
            6 => Ok(IpAddr::V6(Ipv6Addr::from(self.array::<16>(field)?))),
            f => Err(DecodeError::InvalidValue {
                message: self.message,
                field,
                value: f.into(),
            }),
        }
    }
    fn sockaddr(&mut self, field: &'static str) -> R<SocketAddr> {
        let ip = self.ip(field)?;
        Ok(SocketAddr::new(ip, self.u16(field)?))
    }
    fn conns(&mut self) -> R<Vec<Connection>> {
        let n = self.u16("connection count")? as usize;
        // The smallest entry (two IPv4 socket addresses) is 14 octets: never
        // reserve more entries than the remaining octets can hold.
        let fit = (self.buf.len() - self.pos) / 14;
        if n > fit {
            return Err(DecodeError::Truncated {
                message: self.message,
                field: "connections",
            });
        }
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let client = self.sockaddr("connection client address")?;
            let server = self.sockaddr("connection server address")?;
            v.push(Connection { client, server });
        }
        Ok(v)
    }
    fn magic(&mut self) -> R<()> {
        if self.array::<4>("magic")? != MAGIC {
            return Err(DecodeError::BadMagic {
                message: self.message,
            });
        }
        Ok(())
    }
    fn finish(self) -> R<()> {
        let left = self.buf.len() - self.pos;
        if left != 0 {
            return Err(DecodeError::TrailingBytes {
                message: self.message,
                len: left,
            });
        }
        Ok(())
    }
}

/// Decode one frame body: the octets after the length prefix (type,
/// request ID, message fields). Context data is a slice of `payload`.
pub fn decode_payload(payload: Bytes) -> Result<Frame, DecodeError> {
    use message_type::*;
    if payload.len() < MESSAGE_HEADER_LEN {
        return Err(DecodeError::FrameTooShort {
            len: payload.len() as u32,
        });
    }
    let code = payload[0];
    let request_id = u32::from_be_bytes([payload[1], payload[2], payload[3], payload[4]]);
    let name = type_name(code).ok_or(DecodeError::UnknownMessageType(code))?;
    let mut r = Reader {
        buf: payload,
        pos: MESSAGE_HEADER_LEN,
        message: name,
    };
    let message = match code {
        HELLO => {
            r.magic()?;
            Message::Hello(Hello {
                min_version: r.u16("min version")?,
                max_version: r.u16("max version")?,
                max_frame: r.u32("max frame")?,
                client_name: r.str16("client name")?,
            })
        }
        HELLO_ACK => {
            r.magic()?;
            Message::HelloAck(HelloAck {
                version: r.u16("version")?,
                max_frame: r.u32("max frame")?,
                server_name: r.str16("server name")?,
            })
        }
        REGISTER_SERVICE => Message::RegisterService(RegisterService {
            service_id: r.str16("service id")?,
            fpt: r.u16("fpt")?,
        }),
        DEREGISTER_SERVICE => Message::DeregisterService(DeregisterService {
            service_id: r.str16("service id")?,
        }),
        REGISTER_USER => {
            let service_id = r.str16("service id")?;
            let ue = r.ip("ue")?;
            let flags = r.u8("flags")?;
            if flags & !1 != 0 {
                return Err(DecodeError::InvalidValue {
                    message: name,
                    field: "flags",
                    value: flags.into(),
                });
            }
            Message::RegisterUser(RegisterUser {
                service_id,
                ue,
                replace: flags & 1 != 0,
                connections: r.conns()?,
            })
        }
        DEREGISTER_USER => Message::DeregisterUser(DeregisterUser {
            service_id: r.str16("service id")?,
            ue: r.ip("ue")?,
        }),
        EXPORT_CONTEXT => Message::ExportContext(ExportContext {
            event_id: r.u32("event id")?,
            service_id: r.str16("service id")?,
            ue: r.ip("ue")?,
            status: ReplyStatus::from_u8(r.u8("status")?),
            reason: r.str16("reason")?,
            data: r.bytes32("data")?,
        }),
        IMPORT_CONTEXT => Message::ImportContext(ImportContext {
            event_id: r.u32("event id")?,
            service_id: r.str16("service id")?,
            ue: r.ip("ue")?,
            status: ReplyStatus::from_u8(r.u8("status")?),
            reason: r.str16("reason")?,
            connections: r.conns()?,
        }),
        OK => Message::Ok,
        ERROR => Message::Error(ErrorMessage {
            code: ErrorCode::from_u16(r.u16("code")?),
            message: r.str16("message")?,
        }),
        EXPORT_REQUESTED => Message::ExportRequested(ExportRequested {
            service_id: r.str16("service id")?,
            ue: r.ip("ue")?,
            timeout_ms: r.u32("timeout")?,
        }),
        IMPORT_REQUESTED => Message::ImportRequested(ImportRequested {
            service_id: r.str16("service id")?,
            ue: r.ip("ue")?,
            fpt: r.u16("fpt")?,
            data: r.bytes32("data")?,
        }),
        MIGRATION_OUTCOME => {
            let service_id = r.str16("service id")?;
            let ue = r.ip("ue")?;
            let role = match r.u8("role")? {
                0 => Role::Source,
                1 => Role::Destination,
                v => {
                    return Err(DecodeError::InvalidValue {
                        message: name,
                        field: "role",
                        value: v.into(),
                    })
                }
            };
            let outcome = match r.u8("outcome")? {
                0 => Outcome::Committed,
                1 => Outcome::RolledBack,
                v => {
                    return Err(DecodeError::InvalidValue {
                        message: name,
                        field: "outcome",
                        value: v.into(),
                    })
                }
            };
            Message::MigrationOutcome(MigrationOutcome {
                service_id,
                ue,
                role,
                outcome,
                cause: r.str16("cause")?,
            })
        }
        _ => return Err(DecodeError::UnknownMessageType(code)),
    };
    r.finish()?;
    Ok(Frame {
        request_id,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// The example frames of API.md, byte for byte.
    #[test]
    fn api_md_examples() {
        let mut b = BytesMut::new();
        let hello = Frame::new(
            1,
            Message::Hello(Hello {
                min_version: 1,
                max_version: 1,
                max_frame: 0x0040_0000,
                client_name: "svc".into(),
            }),
        );
        encode(&hello, &mut b).unwrap();
        // length 22 | Hello | request 1 | "SMAP" | versions 1..=1 | max frame 4 MiB | "svc"
        assert_eq!(
            hex(&b),
            "00000016".to_owned()
                + "01"
                + "00000001"
                + "534d4150"
                + "0001"
                + "0001"
                + "00400000"
                + "0003737663"
        );
        b.clear();
        let reg = Frame::new(
            2,
            Message::RegisterUser(RegisterUser {
                service_id: "web".into(),
                ue: "10.0.0.7".parse().unwrap(),
                replace: false,
                connections: vec![Connection {
                    client: "10.0.0.7:40000".parse().unwrap(),
                    server: "192.0.2.1:80".parse().unwrap(),
                }],
            }),
        );
        encode(&reg, &mut b).unwrap();
        // length 32 | RegisterUser | request 2 | "web" | 10.0.0.7 | flags 0 | 1 connection:
        // 10.0.0.7:40000 -> 192.0.2.1:80
        assert_eq!(
            hex(&b),
            "00000020".to_owned()
                + "04"
                + "00000002"
                + "0003776562"
                + "040a000007"
                + "00"
                + "0001"
                + "040a0000079c40"
                + "04c00002010050"
        );
        assert_eq!(decode_frame(&mut b, 1 << 20).unwrap().unwrap(), reg);
        encode(&Frame::new(2, Message::Ok), &mut b).unwrap();
        assert_eq!(hex(&b), "000000054200000002");
        b.clear();
        let close = Frame::new(
            0,
            Message::Error(ErrorMessage {
                code: ErrorCode::MalformedFrame,
                message: "x".into(),
            }),
        );
        encode(&close, &mut b).unwrap();
        assert_eq!(hex(&b), "0000000a4300000000000e000178");
    }

    #[test]
    fn length_prefix_checked_before_buffering() {
        let mut b = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
        assert_eq!(
            decode_frame(&mut b, 1024),
            Err(DecodeError::FrameTooLarge {
                len: u32::MAX,
                max: 1024
            })
        );
        assert!(b.capacity() < 1024);
        let mut b = BytesMut::from(&[0, 0, 0, 4, 1, 2, 3, 4][..]);
        assert_eq!(
            decode_frame(&mut b, 1024),
            Err(DecodeError::FrameTooShort { len: 4 })
        );
        let mut b = BytesMut::from(&[0, 0, 0][..]);
        assert_eq!(decode_frame(&mut b, 1024), Ok(None));
        let mut b = BytesMut::from(&[0, 0, 0, 5, 0x42, 0, 0][..]);
        assert_eq!(decode_frame(&mut b, 1024), Ok(None));
        b.extend_from_slice(&[0, 9]);
        assert_eq!(
            decode_frame(&mut b, 1024),
            Ok(Some(Frame::new(9, Message::Ok)))
        );
    }

    #[test]
    fn connection_count_does_not_drive_allocation() {
        // RegisterUser claiming 65535 connections with none present.
        let mut p = vec![0x04, 0, 0, 0, 1, 0, 1, b'a', 4, 10, 0, 0, 1, 0, 0xff, 0xff];
        assert!(matches!(
            decode_payload(Bytes::from(p.clone())),
            Err(DecodeError::Truncated {
                field: "connections",
                ..
            })
        ));
        p[15] = 0; // count 0xff00: still too many
        assert!(decode_payload(Bytes::from(p)).is_err());
    }

    #[test]
    fn encode_rejects_oversized_fields_and_leaves_buffer() {
        let mut b = BytesMut::from(&b"xy"[..]);
        let f = Frame::new(
            1,
            Message::DeregisterService(DeregisterService {
                service_id: "a".repeat(70_000),
            }),
        );
        assert!(matches!(
            encode(&f, &mut b),
            Err(EncodeError::TooLong {
                field: "service id",
                ..
            })
        ));
        assert_eq!(&b[..], b"xy");
    }
}
