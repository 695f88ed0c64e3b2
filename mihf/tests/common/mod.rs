//! Helpers shared by the mihf daemon integration tests.

use mihf::proto::sap::Registration;
use mihf::wire::*;

/// A SAP registration for user `id`.
pub fn reg(id: &'static str, commands: CommandList, events: EventList) -> Registration {
    Registration {
        user_id: MihfId::from_static(id),
        commands,
        events,
        queries: IsQueryTypeList(0),
    }
}

/// The MN's 802.11 link, no PoA.
pub fn link() -> LinkTupleId {
    LinkTupleId {
        link: LinkId {
            link_type: LinkType::IEEE_802_11,
            addr: LinkAddr::mac([2, 0xaa, 0xbb, 0xcc, 0xdd, 1]),
        },
        poa: None,
    }
}
