//! Decode one MIH_N2N_HO_Commit.request in a loop (for profilers).
use bytes::Bytes;
use mihf::wire::{Frame, Message};

fn main() {
    sizes();
    let hex_text = "1800340901230056010d0c6d6968662d73657276696e67020c0b6d6968662d7461726765743408076d6e2d6d6968663b0b130000060602aabbccdd013c0a0000060602aabbccdd023f1401010000140100000a0100003201000005000002";
    let b = Bytes::from(hex::decode(hex_text).unwrap());
    let _shared = b.clone();
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let mut acc = 0usize;
    for _ in 0..n {
        let f = Frame::parse(std::hint::black_box(&b).clone()).unwrap();
        let m = Message::decode(&f).unwrap();
        acc += m.extra.len() + m.source.as_bytes().len();
    }
    println!("{acc}");
}

#[allow(dead_code)]
fn sizes() {
    use mihf::wire::*;
    eprintln!(
        "Message {} Body {} QosList {} List {} ReqResSet {} MihfId {} LinkAddr {} Error {}",
        std::mem::size_of::<Message>(),
        std::mem::size_of::<Body>(),
        std::mem::size_of::<QosList>(),
        std::mem::size_of::<List<CosValue>>(),
        std::mem::size_of::<ReqResSet>(),
        std::mem::size_of::<MihfId>(),
        std::mem::size_of::<LinkAddr>(),
        std::mem::size_of::<Error>()
    );
}
