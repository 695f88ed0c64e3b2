//! What an X2AP receiving node does with a PDU it does not comprehend
//! (TS 36.423 §10.3.4, error handling of not comprehended IEs).
//!
//! The decoder recognises every procedure code and message type of TS 36.423
//! (Rel-17). A PDU outside that set is still decoded (the outer X2AP-PDU is
//! valid APER) and reported as [`super::Message::Other`];
//! [`super::Pdu::not_comprehended`] says which part is unknown and
//! [`super::Pdu::receiver_action`] what an eNB receiving it shall do. The
//! MIH-User's trigger only observes X2 and never answers, so it ignores such
//! PDUs whatever the action says; the action is for operators reading a
//! capture, and for a node that terminates X2.

use std::fmt;

use super::Criticality;

/// The part of a PDU that the receiver does not comprehend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotComprehended {
    /// A procedure code TS 36.423 does not define (TS 36.423 §10.3.4.1). The
    /// PDU's criticality is the one the sender gave the procedure code, and it
    /// decides the action ([`Criticality::unknown_procedure_action`]).
    ProcedureCode,
    /// A known procedure sent as a type of message it does not have, e.g. a
    /// successfulOutcome of a class 2 procedure such as Handover Cancel, or an
    /// unsuccessfulOutcome of Reset (TS 36.423 §10.3.4.1A, Type of Message).
    TypeOfMessage,
}

impl NotComprehended {
    /// Stable snake_case name: `procedure_code` or `type_of_message`.
    pub fn name(self) -> &'static str {
        match self {
            NotComprehended::ProcedureCode => "procedure_code",
            NotComprehended::TypeOfMessage => "type_of_message",
        }
    }

    /// What the receiving node does, given the criticality of the PDU's
    /// procedure code.
    ///
    /// An unknown procedure code follows its criticality (TS 36.423
    /// §10.3.4.1). A type of message the procedure does not have is answered
    /// with Error Indication (TS 36.423 §10.3.4.1A); the message cannot be
    /// acted on, so it is ignored, whatever the criticality (which applies
    /// only to a procedure code the receiver does not comprehend).
    pub fn receiver_action(self, criticality: Criticality) -> ReceiverAction {
        match self {
            NotComprehended::ProcedureCode => criticality.unknown_procedure_action(),
            NotComprehended::TypeOfMessage => ReceiverAction::IgnoreWithErrorIndication,
        }
    }
}

impl fmt::Display for NotComprehended {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a receiving node does with a procedure it does not comprehend
/// (TS 36.423 §10.3.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReceiverAction {
    /// Criticality `reject`: reject the procedure and initiate the Error
    /// Indication procedure.
    RejectWithErrorIndication,
    /// Criticality `notify` ("ignore IE and notify sender"): ignore the
    /// procedure and initiate the Error Indication procedure.
    IgnoreWithErrorIndication,
    /// Criticality `ignore`: ignore the procedure, and send nothing.
    Ignore,
}

impl ReceiverAction {
    /// All three, in the order of the Criticality values they answer.
    pub const ALL: [ReceiverAction; 3] = [
        ReceiverAction::RejectWithErrorIndication,
        ReceiverAction::Ignore,
        ReceiverAction::IgnoreWithErrorIndication,
    ];

    /// Stable snake_case name: `reject_with_error_indication`,
    /// `ignore_with_error_indication` or `ignore`.
    pub fn name(self) -> &'static str {
        match self {
            ReceiverAction::RejectWithErrorIndication => "reject_with_error_indication",
            ReceiverAction::IgnoreWithErrorIndication => "ignore_with_error_indication",
            ReceiverAction::Ignore => "ignore",
        }
    }

    /// Whether the receiving node initiates Error Indication towards the sender.
    pub fn sends_error_indication(self) -> bool {
        !matches!(self, ReceiverAction::Ignore)
    }
}

impl fmt::Display for ReceiverAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Criticality {
    /// What a receiving node does with a procedure code it does not
    /// comprehend sent with this criticality (TS 36.423 §10.3.4.1).
    ///
    /// ```
    /// use mih_user::x2ap::{Criticality, ReceiverAction};
    /// assert_eq!(Criticality::Reject.unknown_procedure_action(), ReceiverAction::RejectWithErrorIndication);
    /// assert_eq!(Criticality::Notify.unknown_procedure_action().name(), "ignore_with_error_indication");
    /// assert_eq!(Criticality::Ignore.unknown_procedure_action(), ReceiverAction::Ignore);
    /// ```
    pub fn unknown_procedure_action(self) -> ReceiverAction {
        match self {
            Criticality::Reject => ReceiverAction::RejectWithErrorIndication,
            Criticality::Notify => ReceiverAction::IgnoreWithErrorIndication,
            Criticality::Ignore => ReceiverAction::Ignore,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_procedure_code_follows_its_criticality() {
        let got: Vec<_> = [
            Criticality::Reject,
            Criticality::Ignore,
            Criticality::Notify,
        ]
        .into_iter()
        .map(|c| {
            let a = NotComprehended::ProcedureCode.receiver_action(c);
            assert_eq!(a, c.unknown_procedure_action());
            (c.name(), a.name(), a.sends_error_indication())
        })
        .collect();
        assert_eq!(
            got,
            [
                ("reject", "reject_with_error_indication", true),
                ("ignore", "ignore", false),
                ("notify", "ignore_with_error_indication", true),
            ]
        );
    }

    #[test]
    fn unknown_type_of_message_is_ignored_with_error_indication() {
        for c in [
            Criticality::Reject,
            Criticality::Ignore,
            Criticality::Notify,
        ] {
            assert_eq!(
                NotComprehended::TypeOfMessage.receiver_action(c),
                ReceiverAction::IgnoreWithErrorIndication
            );
        }
    }

    #[test]
    fn names_are_distinct_snake_case() {
        let names: Vec<&str> = ReceiverAction::ALL.iter().map(|a| a.name()).collect();
        for (i, n) in names.iter().enumerate() {
            assert!(
                n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{n}"
            );
            assert!(!names[..i].contains(n), "{n}");
            assert_eq!(ReceiverAction::ALL[i].to_string(), *n);
        }
        assert_eq!(NotComprehended::ProcedureCode.to_string(), "procedure_code");
        assert_eq!(NotComprehended::TypeOfMessage.name(), "type_of_message");
    }
}
