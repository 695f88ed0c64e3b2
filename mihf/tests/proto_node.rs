//! Two (or three) sans-IO MIHF nodes and their SAP users on a simulated
//! network: routing, management services, events, security checks and the
//! failure confirms. Time is simulated; nothing touches a socket.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mihf::proto::node::{Node, NodeConfig, PeerConfig};
use mihf::proto::sap::{self, Registration};
use mihf::proto::status::status_of;
use mihf::proto::Endpoint;
use mihf::wire::message::*;
use mihf::wire::*;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

const A: &str = "127.0.0.1:4551";
const B: &str = "127.0.0.2:4551";
const C: &str = "127.0.0.3:4551";

fn node_cfg(id: &'static str, peers: &[(&'static str, &str)]) -> NodeConfig {
    let mut c = NodeConfig::new(MihfId::from_static(id));
    c.engine.retransmission_timeout = Duration::from_millis(100);
    c.engine.retransmission_backoff = 1;
    c.engine.max_retransmissions = 2;
    c.engine.transaction_lifetime = Duration::from_secs(2);
    c.engine.ack_delay = Duration::from_millis(20);
    c.user_response_timeout = Duration::from_secs(1);
    c.peers = peers
        .iter()
        .map(|(pid, addr)| PeerConfig {
            id: MihfId::from_static(pid),
            udp: Some(sa(addr)),
            tcp: None,
            prefer_tcp: false,
        })
        .collect();
    c
}

/// Nodes keyed by their peer address; SAP users keyed by their address.
struct Net {
    now: Instant,
    nodes: HashMap<SocketAddr, Node>,
    /// Frames each user received: (from node, frame).
    inbox: HashMap<SocketAddr, Vec<Message>>,
    /// Which node a user talks to.
    user_node: HashMap<SocketAddr, SocketAddr>,
    /// Drop peer frames going to these node addresses.
    blackhole: Vec<SocketAddr>,
    dropped: usize,
}

impl Net {
    fn new(nodes: Vec<(&str, NodeConfig)>) -> Net {
        let now = Instant::now();
        Net {
            now,
            nodes: nodes
                .into_iter()
                .map(|(a, c)| (sa(a), Node::new(c, now)))
                .collect(),
            inbox: HashMap::new(),
            user_node: HashMap::new(),
            blackhole: Vec::new(),
            dropped: 0,
        }
    }

    fn node(&mut self, a: &str) -> &mut Node {
        self.nodes.get_mut(&sa(a)).unwrap()
    }

    /// Deliver every frame until nothing moves.
    fn settle(&mut self) {
        loop {
            let mut moved = Vec::new();
            for (&addr, n) in self.nodes.iter_mut() {
                while let Some(t) = n.poll_transmit() {
                    moved.push((addr, t));
                }
            }
            if moved.is_empty() {
                return;
            }
            for (from, t) in moved {
                match t.to {
                    Endpoint::Sap(user) => {
                        let m = Message::from_bytes(t.payload).expect("SAP frames decode");
                        self.inbox.entry(user).or_default().push(m);
                    }
                    Endpoint::Udp(to) | Endpoint::Tcp(to) => {
                        if self.blackhole.contains(&to) {
                            self.dropped += 1;
                            continue;
                        }
                        if let Some(n) = self.nodes.get_mut(&to) {
                            let _ = n.handle_frame(self.now, Endpoint::Udp(from), t.payload);
                        }
                    }
                }
            }
        }
    }

    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            let next = self.nodes.values().filter_map(|n| n.poll_timeout()).min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    let now = self.now;
                    for n in self.nodes.values_mut() {
                        n.handle_timeout(now);
                    }
                    self.settle();
                }
                _ => break,
            }
        }
        self.now = end;
        let now = self.now;
        for n in self.nodes.values_mut() {
            n.handle_timeout(now);
        }
        self.settle();
    }

    fn user_send(&mut self, user: &str, msg: &Message) -> Result<(), mihf::proto::node::NodeError> {
        let u = sa(user);
        let node = self.user_node[&u];
        let now = self.now;
        let r = self.nodes.get_mut(&node).unwrap().handle_frame(
            now,
            Endpoint::Sap(u),
            msg.to_bytes().unwrap(),
        );
        self.settle();
        r
    }

    fn register(
        &mut self,
        user: &str,
        node: &str,
        id: &'static str,
        commands: CommandList,
        events: EventList,
    ) {
        self.user_node.insert(sa(user), sa(node));
        let reg = Registration {
            user_id: MihfId::from_static(id),
            commands,
            events,
            queries: IsQueryTypeList::default(),
        };
        let m = sap::register_indication(&reg, &MihfId::from_static(sap::LOCAL_MIHF), 1);
        self.user_send(user, &m).unwrap();
        let got = self.take(user);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].header.mid, sap::USER_REGISTER_CONFIRM);
    }

    fn take(&mut self, user: &str) -> Vec<Message> {
        self.inbox.remove(&sa(user)).unwrap_or_default()
    }
}

fn link() -> LinkTupleId {
    LinkTupleId {
        link: LinkId {
            link_type: LinkType::IEEE_802_11,
            addr: LinkAddr::mac([2, 0xaa, 0xbb, 0xcc, 0xdd, 1]),
        },
        poa: None,
    }
}

fn n2n(src: &'static str, dst: &'static str, tid: u16) -> Message {
    let mut m = Message::new(
        Mid(0x3409),
        tid,
        MihfId::from_static(src),
        MihfId::from_static(dst),
        Body::N2nHoCommitRequest(N2nHoCommitRequest {
            mn_mihf_id: MihfId::from_static("mn-01"),
            mn_link_id: link().link,
            poa: LinkAddr::mac([2, 0xaa, 0xbb, 0xcc, 0xdd, 2]),
            requested_resources: None,
        }),
    );
    m.header.tid = tid;
    m
}

fn answer(ind: &Message, status: Status) -> Message {
    let Body::N2nHoCommitRequest(r) = &ind.body else {
        panic!("{ind:?}")
    };
    Message::new(
        Mid(0x3809),
        ind.header.tid,
        ind.destination.clone(),
        ind.source.clone(),
        Body::N2nHoCommitResponse(N2nHoCommitResponse {
            status,
            mn_mihf_id: r.mn_mihf_id.clone(),
            link: Some(link()),
            assigned_resources: None,
        }),
    )
}

const U1: &str = "127.0.0.1:40001";
const U2: &str = "127.0.0.2:40002";
const U3: &str = "127.0.0.2:40003";

fn two_nodes() -> Net {
    let mut net = Net::new(vec![
        (A, node_cfg("mihf1", &[("mihf2", B)])),
        (B, node_cfg("mihf2", &[("mihf1", A)])),
    ]);
    net.register(U1, A, "user1", CommandList(0), EventList(0));
    net.register(U2, B, "user2", CommandList::NET_HO, EventList(0));
    net
}

fn n2n_round_trip(status: Status) {
    let mut net = two_nodes();
    net.user_send(U1, &n2n("user1", "mihf2", 77)).unwrap();
    // U2 gets the indication, from mihf1, with a SAP TID of mihf2's choosing.
    let ind = net.take(U2);
    assert_eq!(ind.len(), 1);
    assert_eq!(ind[0].header.mid, Mid(0x3c09));
    assert_eq!(ind[0].source.as_str(), Some("mihf1"));
    assert_eq!(ind[0].destination.as_str(), Some("user2"));
    net.user_send(U2, &answer(&ind[0], status)).unwrap();
    let cnf = net.take(U1);
    assert_eq!(cnf.len(), 1);
    let c = &cnf[0];
    assert_eq!(c.header.mid, Mid(0x3009));
    assert_eq!(c.header.tid, 77, "the confirm carries the user's TID");
    assert_eq!(c.source.as_str(), Some("mihf2"));
    assert_eq!(c.destination.as_str(), Some("user1"));
    assert_eq!(status_of(c), Some(status));
    let Body::N2nHoCommitResponse(r) = &c.body else {
        panic!()
    };
    assert_eq!(r.link, Some(link()));
    // Two peer frames in all (request, response with piggy-backed ACK).
    let s = net.node(A).stats();
    assert_eq!(s.engine.frames_out, 1);
    assert_eq!(s.engine.frames_in, 1);
    net.advance(Duration::from_secs(3));
    assert_eq!(net.node(A).stats().engine.retransmissions, 0);
    let t = net.node(B).table_sizes();
    assert_eq!((t.pending, t.destination_transactions), (0, 0));
}

#[test]
fn n2n_ho_commit_success() {
    n2n_round_trip(Status::SUCCESS);
}

#[test]
fn n2n_ho_commit_refusal() {
    n2n_round_trip(Status::REJECTED);
}

#[test]
fn no_handling_user_gives_unspecified_failure() {
    let mut net = Net::new(vec![
        (A, node_cfg("mihf1", &[("mihf2", B)])),
        (B, node_cfg("mihf2", &[("mihf1", A)])),
    ]);
    net.register(U1, A, "user1", CommandList(0), EventList(0));
    net.user_send(U1, &n2n("user1", "mihf2", 5)).unwrap();
    let c = net.take(U1);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].header.mid, Mid(0x3009));
    assert_eq!(status_of(&c[0]), Some(Status::UNSPECIFIED_FAILURE));
    assert_eq!(net.node(B).stats().no_handler, 1);
}

#[test]
fn unknown_destination_gives_network_error_at_once() {
    let mut net = two_nodes();
    net.user_send(U1, &n2n("user1", "nobody", 6)).unwrap();
    let c = net.take(U1);
    assert_eq!(status_of(&c[0]), Some(Status::NETWORK_ERROR));
    assert_eq!(c[0].header.tid, 6);
}

#[test]
fn no_free_tid_towards_the_peer_gives_the_user_a_failure_at_once() {
    // Two TIDs towards a peer: a third commit while both are out (or in
    // their quarantine) is refused at once, counted, and the TIDs come
    // back after the quarantine (span 100 + 100 ms + margin 100 ms).
    let mut a = node_cfg("mihf1", &[("mihf2", B)]);
    a.engine.max_transactions_per_peer = 2;
    let mut net = Net::new(vec![(A, a), (B, node_cfg("mihf2", &[("mihf1", A)]))]);
    net.register(U1, A, "user1", CommandList(0), EventList(0));
    net.register(U2, B, "user2", CommandList::NET_HO, EventList(0));
    for tid in [1, 2] {
        net.user_send(U1, &n2n("user1", "mihf2", tid)).unwrap();
    }
    net.user_send(U1, &n2n("user1", "mihf2", 3)).unwrap();
    let c = net.take(U1);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].header.tid, 3);
    assert_eq!(status_of(&c[0]), Some(Status::UNSPECIFIED_FAILURE));
    assert_eq!(net.node(A).stats().engine.tid_exhausted, 1);
    assert_eq!(net.node(A).stats().pending_full, 0);
    for ind in net.take(U2) {
        net.user_send(U2, &answer(&ind, Status::SUCCESS)).unwrap();
    }
    assert_eq!(net.take(U1).len(), 2, "both answered");
    // Answered, but in quarantine.
    net.user_send(U1, &n2n("user1", "mihf2", 4)).unwrap();
    assert_eq!(
        status_of(&net.take(U1)[0]),
        Some(Status::UNSPECIFIED_FAILURE)
    );
    net.advance(Duration::from_millis(300));
    net.user_send(U1, &n2n("user1", "mihf2", 5)).unwrap();
    assert_eq!(net.take(U2).len(), 1, "relayed again");
    assert_eq!(net.node(A).stats().engine.tid_exhausted, 2);
}

#[test]
fn peer_down_gives_network_error_after_retransmissions() {
    let mut net = two_nodes();
    net.blackhole.push(sa(B));
    net.user_send(U1, &n2n("user1", "mihf2", 8)).unwrap();
    assert!(net.take(U1).is_empty());
    net.advance(Duration::from_millis(299));
    assert!(net.take(U1).is_empty());
    net.advance(Duration::from_millis(1));
    let c = net.take(U1);
    assert_eq!(c.len(), 1);
    assert_eq!(status_of(&c[0]), Some(Status::NETWORK_ERROR));
    assert_eq!(net.dropped, 3, "first send and two retransmissions");
}

#[test]
fn silent_user_gives_the_peer_a_failure_response() {
    let mut net = two_nodes();
    net.user_send(U1, &n2n("user1", "mihf2", 9)).unwrap();
    assert_eq!(net.take(U2).len(), 1);
    net.advance(Duration::from_secs(1));
    let c = net.take(U1);
    assert_eq!(c.len(), 1);
    assert_eq!(status_of(&c[0]), Some(Status::UNSPECIFIED_FAILURE));
    assert_eq!(net.node(B).stats().user_timeouts, 1);
    // A late answer finds nothing to answer.
    let late = answer(&n2n("mihf1", "user2", 1), Status::SUCCESS);
    assert!(net.user_send(U2, &late).is_err());
}

#[test]
fn capability_discovery_reports_and_records_capabilities() {
    let mut net = two_nodes();
    let req = Message::new(
        Mid(0x1401),
        3,
        MihfId::from_static("user1"),
        MihfId::from_static("mihf2"),
        Body::CapabilityDiscoverRequest(CapabilityDiscoverRequest {
            link_addr_list: None,
            event_list: None,
            command_list: None,
            is_query_types: None,
            transports: None,
            mbb_ho_support: None,
        }),
    );
    net.user_send(U1, &req).unwrap();
    let c = net.take(U1);
    let Body::CapabilityDiscoverResponse(r) = &c[0].body else {
        panic!("{c:?}")
    };
    assert!(r.status.is_success());
    assert!(r.command_list.unwrap().contains(CommandList::NET_HO));
    assert!(r.transports.unwrap().contains(TransportList::UDP));
    let peer = net
        .node(A)
        .peer(&MihfId::from_static("mihf2"))
        .cloned()
        .unwrap();
    assert!(peer
        .capabilities
        .unwrap()
        .commands
        .unwrap()
        .contains(CommandList::NET_HO));
    // The local MIHF answers for itself too.
    let mut local = req.clone();
    local.destination = MihfId::from_static("mihf1");
    net.user_send(U1, &local).unwrap();
    let c = net.take(U1);
    assert!(matches!(&c[0].body, Body::CapabilityDiscoverResponse(r) if r.status.is_success()));
}

#[test]
fn unknown_peers_are_dropped_but_learned_from_capability_discover() {
    let mut b = node_cfg("mihf2", &[("mihf1", A)]);
    b.learn_peers = true;
    let mut net = Net::new(vec![
        (A, node_cfg("mihf1", &[("mihf2", B)])),
        (B, b),
        (C, node_cfg("mihf3", &[("mihf2", B)])),
    ]);
    net.register(U2, B, "user2", CommandList::NET_HO, EventList(0));
    let u4 = "127.0.0.3:40004";
    net.register(u4, C, "user4", CommandList(0), EventList(0));
    // mihf2 does not know mihf3: its N2N request is dropped, the user times out.
    net.user_send(u4, &n2n("user4", "mihf2", 1)).unwrap();
    assert!(net.take(U2).is_empty());
    assert!(net.node(B).stats().unknown_peer >= 1);
    net.advance(Duration::from_secs(2));
    assert_eq!(status_of(&net.take(u4)[0]), Some(Status::NETWORK_ERROR));
    // After a Capability_Discover from mihf3, mihf2 knows it (as ODTONE does).
    let disc = Message::new(
        Mid(0x1401),
        2,
        MihfId::from_static("user4"),
        MihfId::from_static("mihf2"),
        Body::CapabilityDiscoverRequest(CapabilityDiscoverRequest {
            link_addr_list: None,
            event_list: None,
            command_list: None,
            is_query_types: None,
            transports: Some(TransportList::UDP),
            mbb_ho_support: None,
        }),
    );
    net.user_send(u4, &disc).unwrap();
    assert!(status_of(&net.take(u4)[0]).unwrap().is_success());
    let learned = net
        .node(B)
        .peer(&MihfId::from_static("mihf3"))
        .cloned()
        .unwrap();
    assert!(!learned.configured);
    assert_eq!(learned.udp, Some(sa(C)));
    net.user_send(u4, &n2n("user4", "mihf2", 3)).unwrap();
    let ind = net.take(U2);
    assert_eq!(ind.len(), 1);
    // A frame claiming to be mihf1 from mihf3's address is refused.
    let fake = n2n("mihf1", "mihf2", 4).to_bytes().unwrap();
    let now = net.now;
    let r = net.node(B).handle_frame(now, Endpoint::Udp(sa(C)), fake);
    assert!(
        matches!(r, Err(mihf::proto::node::NodeError::AddressMismatch { .. })),
        "{r:?}"
    );
}

#[test]
fn event_subscription_and_delivery() {
    let mut net = two_nodes();
    // U3 on mihf2 publishes Link_Up and Link_Down.
    net.register(
        U3,
        B,
        "radio",
        CommandList(0),
        EventList::LINK_UP | EventList::LINK_DOWN,
    );
    let sub = Message::new(
        Mid(0x1404),
        11,
        MihfId::from_static("user1"),
        MihfId::from_static("mihf2"),
        Body::EventSubscribeRequest(EventSubscribeRequest {
            link: link(),
            events: EventList::LINK_UP | EventList::LINK_GOING_DOWN,
            config: None,
        }),
    );
    net.user_send(U1, &sub).unwrap();
    let c = net.take(U1);
    let Body::EventSubscribeResponse(r) = &c[0].body else {
        panic!("{c:?}")
    };
    assert!(r.status.is_success());
    assert_eq!(
        r.events,
        Some(EventList::LINK_UP),
        "only what is published is granted"
    );
    let up = Message::new(
        Mid(0x2c02),
        0,
        MihfId::from_static("radio"),
        MihfId::from_static("mihf2"),
        Body::LinkUp(LinkUpIndication {
            link: link(),
            old_access_router: None,
            new_access_router: None,
            ip_renewal: None,
            mobility_management: None,
        }),
    );
    net.user_send(U3, &up).unwrap();
    let got = net.take(U1);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header.mid, Mid(0x2c02));
    assert_eq!(got[0].source.as_str(), Some("mihf2"));
    assert!(matches!(&got[0].body, Body::LinkUp(b) if b.link == link()));
    // Unsubscribe: no more delivery.
    let unsub = Message::new(
        Mid(0x1405),
        12,
        MihfId::from_static("user1"),
        MihfId::from_static("mihf2"),
        Body::EventUnsubscribeRequest(EventUnsubscribeRequest {
            link: link(),
            events: EventList::LINK_UP,
        }),
    );
    net.user_send(U1, &unsub).unwrap();
    assert!(status_of(&net.take(U1)[0]).unwrap().is_success());
    net.user_send(U3, &up).unwrap();
    assert!(net.take(U1).is_empty());
    assert_eq!(net.node(B).table_sizes().subscriptions, 0);
}

#[test]
fn register_and_deregister_with_a_peer() {
    let mut net = two_nodes();
    let reg = Message::new(
        Mid(0x1402),
        1,
        MihfId::from_static("user1"),
        MihfId::from_static("mihf2"),
        Body::RegisterRequest(RegisterRequest {
            link_ids: List::from_items([link().link].iter()),
            request_code: RegRequestCode::REGISTRATION,
        }),
    );
    net.user_send(U1, &reg).unwrap();
    let c = net.take(U1);
    let Body::RegisterResponse(r) = &c[0].body else {
        panic!("{c:?}")
    };
    assert!(r.status.is_success());
    assert_eq!(r.valid_time_interval, Some(3600));
    assert!(net
        .node(B)
        .peer(&MihfId::from_static("mihf1"))
        .unwrap()
        .registered_until
        .is_some());
    let dereg = Message::new(
        Mid(0x1403),
        2,
        MihfId::from_static("user1"),
        MihfId::from_static("mihf2"),
        Body::DeRegisterRequest(DeRegisterRequest {}),
    );
    net.user_send(U1, &dereg).unwrap();
    assert!(status_of(&net.take(U1)[0]).unwrap().is_success());
    assert!(net
        .node(B)
        .peer(&MihfId::from_static("mihf1"))
        .unwrap()
        .registered_until
        .is_none());
}

#[test]
fn unsupported_request_gets_a_status() {
    let mut net = two_nodes();
    // MIH_Link_Get_Parameters (not served by the MIHF, no user declared it).
    let mut m = Message::new(
        Mid(0x3401),
        4,
        MihfId::from_static("user1"),
        MihfId::from_static("mihf2"),
        Body::Unknown,
    );
    m.header.tid = 4;
    net.user_send(U1, &m).unwrap();
    let c = net.take(U1);
    assert_eq!(c[0].header.mid, Mid(0x3001));
    assert_eq!(status_of(&c[0]), Some(Status::UNSPECIFIED_FAILURE));
}

#[test]
fn garbage_on_both_interfaces_is_counted_and_bounded() {
    let mut net = two_nodes();
    let now = net.now;
    let mut seed = 1u64;
    for i in 0..5000u32 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let len = (seed >> 56) as usize;
        let mut v: Vec<u8> = (0..len).map(|j| (seed >> (j % 56)) as u8).collect();
        if i % 3 == 0 && v.len() >= 8 {
            // A plausible header with the fragment bit, to poke reassembly.
            v[0] = 0x11;
            let plen = (v.len() - 8) as u16;
            v[6..8].copy_from_slice(&plen.to_be_bytes());
            v[4] = (i >> 8) as u8 & 0x0f;
            v[5] = i as u8;
        }
        let from = Endpoint::Udp(SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 4551)));
        let _ = net.node(B).handle_frame(now, from, Bytes::from(v.clone()));
        let _ = net
            .node(B)
            .handle_frame(now, Endpoint::Sap(sa(U2)), Bytes::from(v));
    }
    let t = net.node(B).table_sizes();
    assert!(
        t.reassembly_messages <= 64 && t.reassembly_bytes <= 1 << 20,
        "{t:?}"
    );
    assert_eq!(t.destination_transactions, 0);
    assert!(t.users <= 64);
    let s = net.node(B).stats();
    assert!(s.engine.decode_errors + s.engine.reassembly_errors + s.sap_errors > 0);
    // Nothing from addresses of no peer was decoded or buffered.
    assert_eq!(s.unknown_source, 5000);
    assert_eq!(t.reassembly_messages, 0);
    // And the node still works.
    net.settle();
    net.take(U2);
    net.user_send(U1, &n2n("user1", "mihf2", 70)).unwrap();
    let ind = net.take(U2);
    assert_eq!(ind.len(), 1);
}

#[test]
fn bitmaps_in_the_other_bit_order_are_read_leniently() {
    use mihf::proto::node::{lenient_commands, lenient_events, lenient_transports};
    // Standard/ODTONE order passes through.
    assert_eq!(lenient_commands(CommandList::NET_HO), CommandList::NET_HO);
    assert_eq!(lenient_events(EventList(0x16)), EventList(0x16));
    // Wireshark order (bit 0 = MSB of the first octet) is turned around.
    assert_eq!(
        lenient_commands(CommandList(0x1000_0000)),
        CommandList::NET_HO
    );
    assert_eq!(lenient_events(EventList(0x6800_0000)), EventList(0x16));
    assert_eq!(
        lenient_transports(TransportList(0x8000)),
        TransportList::UDP
    );
    // Undefined high bits alone stay as they are when reversing finds nothing.
    assert_eq!(
        lenient_events(EventList(0x0000_1000)),
        EventList(0x0000_1000)
    );
}

#[test]
fn shutdown_answers_everyone_waiting() {
    let mut net = two_nodes();
    // U1 waits for mihf2; U2 (on mihf2) holds mihf1's request.
    net.user_send(U1, &n2n("user1", "mihf2", 21)).unwrap();
    assert_eq!(net.take(U2).len(), 1);
    let now = net.now;
    net.node(B).shutdown(now);
    net.settle();
    // mihf1 relayed mihf2's failure response to U1.
    let c = net.take(U1);
    assert_eq!(status_of(&c[0]), Some(Status::UNSPECIFIED_FAILURE));
    // And a user waiting on a node that stops gets Network Error.
    net.blackhole.push(sa(B));
    net.user_send(U1, &n2n("user1", "mihf2", 22)).unwrap();
    net.node(A).shutdown(now);
    net.settle();
    let c = net.take(U1);
    assert_eq!(
        (c[0].header.tid, status_of(&c[0])),
        (22, Some(Status::NETWORK_ERROR))
    );
    assert_eq!(net.node(A).table_sizes().pending, 0);
}

/// The frames a node has for `to`, as bytes.
fn transmits_to(n: &mut Node, to: Endpoint) -> Vec<Bytes> {
    let mut out = Vec::new();
    while let Some(t) = n.poll_transmit() {
        assert_eq!(t.to, to, "nothing else is sent");
        out.push(t.payload);
    }
    out
}

#[test]
fn user_registration_is_confirmed_only_when_asked_as_odtone_users_expect() {
    let now = Instant::now();
    let mut n = Node::new(node_cfg("mihf1", &[]), now);
    let u = Endpoint::Sap(sa(U1));
    // ODTONE's mih_usr registering with `commands = mih_n2n_ho_commit`:
    // User_Register.indication, no ACK-Req, TID 0, Src "user",
    // Dst "local-mihf", TLV 6 with bit 3.
    let odtone =
        hex::decode("10001c070000001a01050475736572020b0a6c6f63616c2d6d696866060400000008")
            .unwrap();
    for _ in 0..2 {
        n.handle_frame(now, u, Bytes::from(odtone.clone())).unwrap();
        assert_eq!(
            transmits_to(&mut n, u),
            Vec::<Bytes>::new(),
            "ODTONE's MIHF answers a user registration with nothing"
        );
    }
    let user = n.users().next().cloned().unwrap();
    assert_eq!(user.id.as_str(), Some("user"));
    assert!(user.commands.contains(CommandList::NET_HO));
    // Its first request gets its confirm and nothing before it.
    let disc = Message::new(
        Mid(0x1401),
        1,
        MihfId::from_static("user"),
        MihfId::from_static(sap::LOCAL_MIHF),
        Body::CapabilityDiscoverRequest(CapabilityDiscoverRequest {
            link_addr_list: None,
            event_list: None,
            command_list: None,
            is_query_types: None,
            transports: None,
            mbb_ho_support: None,
        }),
    );
    n.handle_frame(now, u, disc.to_bytes().unwrap()).unwrap();
    let got = transmits_to(&mut n, u);
    assert_eq!(got.len(), 1);
    let c = Message::from_bytes(got[0].clone()).unwrap();
    assert_eq!((c.header.mid, c.header.tid), (Mid(0x1001), 1));
    // A user that sends a request without registering is served, without
    // a User_Register.confirm, and not remembered.
    let u2 = Endpoint::Sap(sa(U2));
    let mut disc2 = disc.clone();
    disc2.source = MihfId::from_static("user2");
    disc2.header.tid = 5;
    n.handle_frame(now, u2, disc2.to_bytes().unwrap()).unwrap();
    let got = transmits_to(&mut n, u2);
    assert_eq!(got.len(), 1);
    assert_eq!(&got[0][..6], &[0x10, 0x00, 0x10, 0x01, 0x00, 0x05]);
    // This crate's users set ACK-Req and get the confirm with their TID.
    let u3 = Endpoint::Sap(sa(U3));
    let reg = Registration {
        user_id: MihfId::from_static("user3"),
        ..Registration::default()
    };
    let ours = sap::register_indication(&reg, &MihfId::from_static(sap::LOCAL_MIHF), 9);
    n.handle_frame(now, u3, ours.to_bytes().unwrap()).unwrap();
    assert_eq!(
        transmits_to(&mut n, u3),
        vec![Bytes::from(
            // Header (TID 9), Src "mihf1", Dst "user3", STATUS Success.
            hex::decode("10001007000900130106056d696866310206057573657233030100").unwrap()
        )]
    );
    assert_eq!(
        n.users().count(),
        2,
        "user and user3; user2 never registered"
    );
}

#[test]
fn a_users_capability_discover_carries_the_mihf_own_capabilities() {
    let now = Instant::now();
    let mut cfg = node_cfg("mihf1", &[("mihf2", B)]);
    cfg.transports = TransportList::UDP;
    let mut n = Node::new(cfg, now);
    let u = Endpoint::Sap(sa(U1));
    let reg = Registration {
        user_id: MihfId::from_static("user1"),
        commands: CommandList::NET_HO,
        events: EventList::LINK_UP,
        queries: IsQueryTypeList::default(),
    };
    let m = sap::register_indication(&reg, &MihfId::from_static(sap::LOCAL_MIHF), 1);
    n.handle_frame(now, u, m.to_bytes().unwrap()).unwrap();
    assert_eq!(transmits_to(&mut n, u).len(), 1);
    // The user asks for everything, TCP included, and adds a vendor TLV.
    let mut req = Message::new(
        Mid(0x1401),
        7,
        MihfId::from_static("user1"),
        MihfId::from_static("mihf2"),
        Body::CapabilityDiscoverRequest(CapabilityDiscoverRequest {
            link_addr_list: None,
            event_list: Some(EventList(0x1ff)),
            command_list: Some(CommandList::MN_HO | CommandList::LINK_ACTIONS),
            is_query_types: Some(IsQueryTypeList::RDF_DATA),
            transports: Some(TransportList::UDP | TransportList::TCP),
            mbb_ho_support: None,
        }),
    );
    req.extra = vec![RawTlvs::new(6, Bytes::from_static(&[100, 4, b'O', b'D', b'T', 1])).unwrap()];
    n.handle_frame(now, u, req.to_bytes().unwrap()).unwrap();
    let sent = transmits_to(&mut n, Endpoint::Udp(sa(B)));
    assert_eq!(sent.len(), 1);
    let out = Message::from_bytes(sent[0].clone()).unwrap();
    assert_eq!(out.source.as_str(), Some("mihf1"));
    assert_eq!(
        out.body,
        Body::CapabilityDiscoverRequest(CapabilityDiscoverRequest {
            link_addr_list: None,
            event_list: Some(EventList::LINK_UP),
            command_list: Some(CommandList::NET_HO),
            is_query_types: Some(IsQueryTypeList::default()),
            transports: Some(TransportList::UDP),
            mbb_ho_support: None,
        })
    );
    assert!(out.extra.is_empty(), "{:?}", out.extra);
}

// ------------------------------------------------------------- under abuse

use mihf::proto::node::{NodeError, NodeEvent};

fn events(n: &mut Node) -> Vec<NodeEvent> {
    std::iter::from_fn(|| n.poll_event()).collect()
}

fn discover(src: &str, dst: &'static str, tid: u16) -> Message {
    Message::new(
        Mid(0x1401),
        tid,
        MihfId::new(src.as_bytes().to_vec()),
        MihfId::from_static(dst),
        Body::CapabilityDiscoverRequest(CapabilityDiscoverRequest {
            link_addr_list: None,
            event_list: None,
            command_list: None,
            is_query_types: None,
            transports: Some(TransportList::UDP),
            mbb_ho_support: None,
        }),
    )
}

/// A peer's commit reaches U2 on mihf2 and U1 gets the handler's answer.
fn commit_reaches_the_handler(net: &mut Net, tid: u16) {
    net.user_send(U1, &n2n("user1", "mihf2", tid)).unwrap();
    let ind = net.take(U2);
    assert_eq!(ind.len(), 1, "the handler gets the indication");
    net.user_send(U2, &answer(&ind[0], Status::SUCCESS))
        .unwrap();
    let c = net.take(U1);
    assert_eq!(c.len(), 1);
    assert_eq!(
        (c[0].header.tid, status_of(&c[0])),
        (tid, Some(Status::SUCCESS))
    );
}

#[test]
fn unregistered_sap_senders_never_push_out_a_registered_handler() {
    let mut net = two_nodes();
    let mut seed = 7u64;
    for i in 0..200u16 {
        let sock = Endpoint::Sap(SocketAddr::from(([127, 0, 0, 1], 50_000 + i)));
        let now = net.now;
        let b = net.node(B);
        // Garbage.
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let junk: Vec<u8> = (0..(seed >> 58) as usize + 3)
            .map(|j| (seed >> (j % 50)) as u8)
            .collect();
        assert!(b.handle_frame(now, sock, Bytes::from(junk)).is_err());
        // Valid frames that are not registrations: a local discovery, a
        // request for the peer, a response to nothing, a subscription and
        // an event.
        let mut local = discover("intruder", "mihf2", i);
        local.destination = MihfId::from_static(sap::LOCAL_MIHF);
        b.handle_frame(now, sock, local.to_bytes().unwrap())
            .unwrap();
        let _ = b.handle_frame(now, sock, n2n("intruder", "mihf1", i).to_bytes().unwrap());
        let stray = answer(&n2n("mihf1", "intruder", i), Status::SUCCESS);
        assert!(matches!(
            b.handle_frame(now, sock, stray.to_bytes().unwrap()),
            Err(NodeError::NoPending { .. })
        ));
        let sub = Message::new(
            Mid(0x1404),
            i,
            MihfId::from_static("intruder"),
            MihfId::from_static("mihf2"),
            Body::EventSubscribeRequest(EventSubscribeRequest {
                link: link(),
                events: EventList::LINK_UP,
                config: None,
            }),
        );
        b.handle_frame(now, sock, sub.to_bytes().unwrap()).unwrap();
        net.settle();
        // Each got its confirms at its own address.
        let got = net.take(&sock.addr().to_string());
        assert!(got.len() >= 2, "{got:?}");
        assert!(got
            .iter()
            .any(|m| m.header.mid == Mid(0x1004) && status_of(m) == Some(Status::REJECTED)));
    }
    // The table holds the registered handler and nothing else; the gauge
    // says so.
    let b = net.node(B);
    assert_eq!(b.table_sizes().users, 1);
    assert_eq!(b.stats().users, 1);
    assert_eq!(b.users().next().unwrap().addr, sa(U2));
    assert_eq!(b.table_sizes().subscriptions, 0);
    assert!(b.stats().subscriptions_refused >= 200);
    net.advance(Duration::from_secs(3));
    net.take(U2);
    commit_reaches_the_handler(&mut net, 300);
}

#[test]
fn registrations_beyond_max_users_are_refused_counted_and_summarized() {
    let mut cfg = node_cfg("mihf2", &[]);
    cfg.max_users = 4;
    let t0 = Instant::now();
    let mut n = Node::new(cfg, t0);
    let reg = |id: &str, tid: u16| {
        let r = Registration {
            user_id: MihfId::new(id.as_bytes().to_vec()),
            commands: CommandList::NET_HO,
            ..Registration::default()
        };
        sap::register_indication(&r, &MihfId::from_static(sap::LOCAL_MIHF), tid)
            .to_bytes()
            .unwrap()
    };
    let user = |i: u16| Endpoint::Sap(SocketAddr::from(([127, 0, 0, 1], 41_000 + i)));
    let confirm_status = |n: &mut Node, to: Endpoint| {
        let got = transmits_to(n, to);
        assert_eq!(got.len(), 1);
        status_of(&Message::from_bytes(got[0].clone()).unwrap())
    };
    for i in 0..4 {
        n.handle_frame(t0, user(i), reg(&format!("u{i}"), i))
            .unwrap();
        assert_eq!(confirm_status(&mut n, user(i)), Some(Status::SUCCESS));
    }
    // The fifth and later ones are refused, with Rejected in the confirm.
    for i in 4..15 {
        assert_eq!(
            n.handle_frame(t0, user(i), reg(&format!("u{i}"), i)),
            Err(NodeError::UserTableFull(4))
        );
        assert_eq!(confirm_status(&mut n, user(i)), Some(Status::REJECTED));
    }
    let s = n.stats();
    assert_eq!((s.users, s.users_refused, s.users_replaced), (4, 11, 0));
    // One WARN-worthy event for the interval, not one per registration.
    let ev = events(&mut n);
    let refused: Vec<_> = ev
        .iter()
        .filter(|e| matches!(e, NodeEvent::UserRefused { .. }))
        .collect();
    assert_eq!(refused.len(), 1, "{ev:?}");
    // With the table full, a registered user refreshes (same address) and
    // a restarted user (same ID, new address) takes its entry over.
    n.handle_frame(t0, user(0), reg("u0", 20)).unwrap();
    assert_eq!(confirm_status(&mut n, user(0)), Some(Status::SUCCESS));
    n.handle_frame(t0, user(99), reg("u1", 21)).unwrap();
    assert_eq!(confirm_status(&mut n, user(99)), Some(Status::SUCCESS));
    assert_eq!((n.stats().users, n.stats().users_replaced), (4, 1));
    assert!(n.users().all(|u| u.addr != user(1).addr()));
    // The summary comes once, after the interval.
    assert_eq!(n.poll_timeout(), Some(t0 + Duration::from_secs(10)));
    n.handle_timeout(t0 + Duration::from_secs(10));
    let sums: Vec<_> = events(&mut n)
        .into_iter()
        .filter_map(|e| match e {
            NodeEvent::Summary(s) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(sums.len(), 1);
    assert_eq!(sums[0].users_refused, 11);
    assert_eq!(sums[0].interval, Duration::from_secs(10));
    // A user that leaves makes room.
    let dereg = sap::deregister_indication(
        &MihfId::from_static("u2"),
        &MihfId::from_static(sap::LOCAL_MIHF),
        0,
    );
    let later = t0 + Duration::from_secs(11);
    n.handle_frame(later, user(2), dereg.to_bytes().unwrap())
        .unwrap();
    n.handle_frame(later, user(50), reg("u50", 50)).unwrap();
    assert_eq!(confirm_status(&mut n, user(50)), Some(Status::SUCCESS));
    assert_eq!(n.stats().users, 4);
    // Below the cap one ID may be registered from two addresses (two
    // mihctl with the default --user-id): neither replaces the other.
    let mut n = Node::new(node_cfg("mihf2", &[]), t0);
    for i in [60, 61] {
        n.handle_frame(t0, user(i), reg("mihctl", i)).unwrap();
        assert_eq!(confirm_status(&mut n, user(i)), Some(Status::SUCCESS));
    }
    assert_eq!((n.stats().users, n.stats().users_replaced), (2, 0));
}

fn attacker(i: u32) -> Endpoint {
    Endpoint::Udp(SocketAddr::from(([10, 9, (i >> 8) as u8, i as u8], 4551)))
}

fn learned_ids(n: &Node) -> Vec<String> {
    n.learned_peers()
        .map(|p| p.id.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn learned_peers_are_bounded_least_recently_heard_first_and_never_evict_configured_ones() {
    let mut b = node_cfg("mihf2", &[("mihf1", A), ("mihf3", C)]);
    b.learn_peers = true;
    let mut net = Net::new(vec![(A, node_cfg("mihf1", &[("mihf2", B)])), (B, b)]);
    net.register(U1, A, "user1", CommandList(0), EventList(0));
    net.register(U2, B, "user2", CommandList::NET_HO, EventList(0));
    let start = net.now;
    // 3,000 MIHF IDs discover mihf2, one every 100 ms (the default rate of
    // 10 a second lets each in).
    let mut summaries = Vec::new();
    for i in 0..3000u32 {
        net.now += Duration::from_millis(100);
        let now = net.now;
        let node = net.node(B);
        node.handle_timeout(now);
        let id = format!("evil-{i:04}");
        node.handle_frame(
            now,
            attacker(i),
            discover(&id, "mihf2", 1).to_bytes().unwrap(),
        )
        .unwrap();
        for e in events(node) {
            if let NodeEvent::Summary(s) = e {
                summaries.push(s);
            }
        }
        net.settle();
    }
    let n = net.node(B);
    let t = n.table_sizes();
    assert_eq!(t.learned_peers, 64, "the learned table is at its cap");
    assert_eq!(t.peers, 66, "two configured peers and 64 learned ones");
    let s = n.stats();
    assert_eq!(
        (s.peers_learned, s.learned_evicted, s.learn_rate_limited),
        (3000, 2936, 0)
    );
    for id in ["mihf1", "mihf3"] {
        let p = n.peer(&MihfId::from_static(id)).unwrap();
        assert!(p.configured, "{id} is still configured");
    }
    // Least recently heard first: the 64 newest remain, oldest first.
    let want: Vec<String> = (2936..3000).map(|i| format!("evil-{i:04}")).collect();
    assert_eq!(learned_ids(n), want);
    // Summaries: at most one per 10 s, and together they count everything.
    let elapsed = net.now - start;
    assert!(summaries.len() as u64 <= elapsed.as_secs() / 10 + 1);
    assert!(summaries.len() >= 29, "{}", summaries.len());
    assert!(summaries
        .iter()
        .all(|s| s.interval >= Duration::from_secs(10)));
    let end = net.now + Duration::from_secs(10);
    let n = net.node(B);
    n.handle_timeout(end);
    for e in events(n) {
        if let NodeEvent::Summary(s) = e {
            summaries.push(s);
        }
    }
    let learned: u64 = summaries.iter().map(|s| s.learned).sum();
    let evicted: u64 = summaries.iter().map(|s| s.evicted).sum();
    assert_eq!((learned, evicted), (3000, 2936));
    // Hearing from the oldest learned peer again saves it: the next one in
    // line is evicted instead.
    net.now += Duration::from_secs(11);
    let now = net.now;
    let n = net.node(B);
    let heard = n2n("evil-2936", "mihf2", 9).to_bytes().unwrap();
    n.handle_frame(now, attacker(2936), heard).unwrap();
    assert_eq!(learned_ids(n)[0], "evil-2937");
    assert_eq!(learned_ids(n).last().unwrap(), "evil-2936");
    n.handle_frame(
        now,
        attacker(3000),
        discover("evil-3000", "mihf2", 1).to_bytes().unwrap(),
    )
    .unwrap();
    let ev = events(n);
    assert!(
        ev.iter().any(|e| matches!(e,
            NodeEvent::PeerLearned { id, evicted: Some(old), .. }
                if id.as_str() == Some("evil-3000") && old.as_str() == Some("evil-2937"))),
        "{ev:?}"
    );
    assert!(learned_ids(n).contains(&"evil-2936".to_string()));
    net.settle();
    net.take(U2);
    // The configured peers are reachable both ways.
    commit_reaches_the_handler(&mut net, 1);
    net.register(U3, B, "user3", CommandList(0), EventList(0));
    net.user_send(U3, &discover("user3", "mihf1", 4)).unwrap();
    let c = net.take(U3);
    assert_eq!(status_of(&c[0]), Some(Status::SUCCESS), "{c:?}");
}

#[test]
fn learning_is_rate_limited_and_restricted_to_learn_from() {
    let mut cfg = node_cfg("mihf2", &[("mihf1", A)]);
    cfg.learn_peers = true;
    cfg.learn_rate = 10;
    cfg.learn_from = vec!["10.9.0.0/16".parse().unwrap()];
    let t0 = Instant::now();
    let mut n = Node::new(cfg, t0);
    // A burst of 100 new IDs at one instant: 10 learned, 90 dropped.
    let mut limited = 0;
    for i in 0..100u32 {
        let r = n.handle_frame(
            t0,
            attacker(i),
            discover(&format!("burst-{i}"), "mihf2", 1)
                .to_bytes()
                .unwrap(),
        );
        if matches!(r, Err(NodeError::LearnRateLimited(_))) {
            limited += 1;
        } else {
            r.unwrap();
        }
    }
    assert_eq!(limited, 90);
    let s = n.stats();
    assert_eq!((s.peers_learned, s.learn_rate_limited), (10, 90));
    // A known (learned) peer is not rate-limited.
    n.handle_frame(
        t0,
        attacker(0),
        discover("burst-0", "mihf2", 2).to_bytes().unwrap(),
    )
    .unwrap();
    // 100 ms later there is room for one more.
    let t1 = t0 + Duration::from_millis(100);
    n.handle_frame(
        t1,
        attacker(200),
        discover("late", "mihf2", 1).to_bytes().unwrap(),
    )
    .unwrap();
    // Outside learn_from: refused before decoding (no peer has the address).
    let outside = Endpoint::Udp(sa("192.0.2.77:4551"));
    assert!(!n.accepts_source(outside.addr().ip()));
    assert_eq!(
        n.handle_frame(t1, outside, discover("far", "mihf2", 1).to_bytes().unwrap()),
        Err(NodeError::UnknownSource(outside.addr()))
    );
    // From a configured peer's address outside learn_from, an unknown ID is
    // decoded but not learned.
    let r = n.handle_frame(
        t1,
        Endpoint::Udp(sa("127.0.0.1:9999")),
        discover("mihf1-impostor", "mihf2", 1).to_bytes().unwrap(),
    );
    assert!(
        matches!(r, Err(NodeError::OutsideLearnFrom { .. })),
        "{r:?}"
    );
    let s = n.stats();
    assert_eq!(
        (s.peers_learned, s.learn_outside_range, s.unknown_source),
        (11, 1, 1)
    );
    // One summary for the interval.
    n.handle_timeout(t0 + Duration::from_secs(10));
    let sums: Vec<_> = events(&mut n)
        .into_iter()
        .filter_map(|e| match e {
            NodeEvent::Summary(s) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(sums.len(), 1);
    assert_eq!(
        (
            sums[0].learned,
            sums[0].rate_limited,
            sums[0].outside_learn_from
        ),
        (11, 90, 1)
    );
}

#[test]
fn learning_is_off_by_default() {
    let t0 = Instant::now();
    let mut n = Node::new(node_cfg("mihf2", &[("mihf1", A)]), t0);
    assert!(!n.config().learn_peers);
    let r = n.handle_frame(
        t0,
        Endpoint::Udp(sa("127.0.0.1:4999")),
        discover("stranger", "mihf2", 1).to_bytes().unwrap(),
    );
    assert!(matches!(r, Err(NodeError::UnknownPeer(_))), "{r:?}");
    assert_eq!(n.table_sizes().learned_peers, 0);
}

#[test]
fn one_peer_cannot_take_the_destination_transaction_table() {
    let mut b = node_cfg("mihf2", &[("mihf1", A), ("mihf3", C)]);
    b.engine.max_transactions = 300;
    b.engine.max_transactions_per_peer = 100;
    let mut net = Net::new(vec![
        (A, node_cfg("mihf1", &[("mihf2", B)])),
        (B, b),
        (C, node_cfg("mihf3", &[("mihf2", B)])),
    ]);
    net.register(U2, B, "user2", CommandList::NET_HO, EventList(0));
    // mihf3 floods commits its handler never answers in time.
    let now = net.now;
    let mut refused = 0;
    for tid in 1..=1000u16 {
        let f = n2n("mihf3", "mihf2", tid).to_bytes().unwrap();
        if let Err(NodeError::Rx(mihf::proto::transaction::RxError::PeerTableFull { .. })) =
            net.node(B).handle_frame(now, Endpoint::Udp(sa(C)), f)
        {
            refused += 1;
        }
    }
    assert_eq!(refused, 900);
    assert_eq!(net.node(B).table_sizes().destination_transactions, 100);
    assert_eq!(net.node(B).stats().engine.peer_table_full, 900);
    net.settle();
    net.take(U2);
    // mihf1's commit still gets through and answered.
    net.register(U1, A, "user1", CommandList(0), EventList(0));
    commit_reaches_the_handler(&mut net, 5);
}

#[test]
fn subscriptions_are_capped_per_subscriber() {
    let mut b = node_cfg("mihf2", &[("mihf1", A)]);
    b.max_subscriptions_per_subscriber = 8;
    let mut net = Net::new(vec![(A, node_cfg("mihf1", &[("mihf2", B)])), (B, b)]);
    net.register(U2, B, "radio", CommandList(0), EventList::LINK_UP);
    net.register(U1, A, "user1", CommandList(0), EventList(0));
    let mut ok = 0;
    for i in 0..20u8 {
        let mut l = link();
        l.link.addr = LinkAddr::mac([2, 0, 0, 0, 0, i]);
        let sub = Message::new(
            Mid(0x1404),
            u16::from(i) + 1,
            MihfId::from_static("user1"),
            MihfId::from_static("mihf2"),
            Body::EventSubscribeRequest(EventSubscribeRequest {
                link: l,
                events: EventList::LINK_UP,
                config: None,
            }),
        );
        net.user_send(U1, &sub).unwrap();
        let c = net.take(U1);
        if status_of(&c[0]) == Some(Status::SUCCESS) {
            ok += 1;
        }
    }
    assert_eq!(ok, 8);
    assert_eq!(net.node(B).table_sizes().subscriptions, 8);
    assert_eq!(net.node(B).stats().subscriptions_refused, 12);
}
