//! The MIH_SAP decoder and the node's SAP and peer inputs: arbitrary frames
//! from users and peers, interleaved with time. Checks: no panic, typed
//! errors, bounded tables.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use mihf::proto::node::{Node, NodeConfig, PeerConfig};
use mihf::proto::{sap, Endpoint};
use mihf::wire::MihfId;

fn run(data: &[u8]) -> Result<()> {
    // The decoder alone, on the whole input.
    let _ = std::hint::black_box(sap::decode(Bytes::copy_from_slice(data)));
    let mut u = Unstructured::new(data);
    let mut c = NodeConfig::new(MihfId::from_static("mihf1"));
    c.max_users = 4;
    c.max_peers = 4;
    c.max_learned_peers = 4;
    c.learn_peers = u.arbitrary()?;
    c.max_subscriptions = 8;
    c.max_pending = 8;
    c.engine.max_transactions = 8;
    c.engine.reassembly.max_messages = 2;
    c.engine.reassembly.max_bytes = 4096;
    c.allow_unknown_peers = u.arbitrary()?;
    c.peers = vec![PeerConfig {
        id: MihfId::from_static("mihf2"),
        udp: Some("127.0.0.2:4551".parse().unwrap()),
        tcp: None,
        prefer_tcp: false,
    }];
    let mut now = Instant::now();
    let mut node = Node::new(c, now);
    while !u.is_empty() {
        let kind: u8 = u.int_in_range(0..=3)?;
        let port: u16 = u.int_in_range(1..=6)?;
        let len = u.int_in_range(0..=400)?;
        let bytes = Bytes::from(u.bytes(len)?.to_vec());
        let from = match kind {
            0 | 1 => Endpoint::Sap(SocketAddr::from(([127, 0, 0, 1], 40000 + port))),
            2 => Endpoint::Udp(SocketAddr::from(([127, 0, 0, 2], 4551))),
            _ => {
                now += Duration::from_millis(u.int_in_range(0..=20_000)?);
                node.handle_timeout(now);
                continue;
            }
        };
        let _ = node.handle_frame(now, from, bytes);
        while node.poll_transmit().is_some() {}
        while node.poll_event().is_some() {}
        let t = node.table_sizes();
        assert!(
            t.users <= 4 && t.peers <= 8 && t.learned_peers <= 4 && t.subscriptions <= 16,
            "{t:?}"
        );
        assert!(
            t.source_transactions <= 8 && t.destination_transactions <= 8,
            "{t:?}"
        );
        assert!(
            t.reassembly_messages <= 2 && t.reassembly_bytes <= 4096,
            "{t:?}"
        );
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(data);
});
