//! The context: what the service hands the MIH-User at the export and gets
//! back at the import, for one UE (version 1, big-endian):
//!
//! `"SES1" | state_bytes u32 | state (state_bytes) | count u16 | count ×
//! (client addr | server addr | next_seq u32 | in_len u32 | in | out_len
//! u32 | out)`, where an address is `family u8 (4|6) | 4 or 16 octets |
//! port u16` (`testbed::svc_kit::put_addr`). `in` is the start of a
//! request not yet complete (or requests not yet processed), `out` the
//! response octets not yet written, both taken from the connection's
//! userspace buffers at the export.
//!
//! The MIH-User carries these octets opaquely (CXTP, `--fpt`).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use mih_user::api::wire::Connection;
use testbed::session::MAX_STATE_BYTES;
use testbed::svc_kit::{at_end, get_conn, get_count, need, put_conn, take_magic};

use crate::service::{INPUT_CAP, OUTPUT_CAP};

const MAGIC: &[u8; 4] = b"SES1";
/// The API's most connections per user.
pub(crate) const MAX_CONNS_IN_CONTEXT: usize = 1024;

/// One connection in a context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ConnContext {
    pub(crate) conn: Connection,
    /// The seq the server expects next.
    pub(crate) next_seq: u32,
    /// Received, not yet processed.
    pub(crate) input: Vec<u8>,
    /// Produced, not yet written.
    pub(crate) output: Vec<u8>,
}

impl ConnContext {
    /// A connection that has not received anything yet.
    pub(crate) fn fresh(conn: Connection) -> ConnContext {
        ConnContext {
            conn,
            next_seq: 0,
            input: Vec::new(),
            output: Vec::new(),
        }
    }
}

/// A UE's context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct UeContext {
    pub(crate) state: Vec<u8>,
    pub(crate) conns: Vec<ConnContext>,
}

fn put_buf(b: &mut BytesMut, v: &[u8]) {
    b.put_u32(v.len() as u32);
    b.put_slice(v);
}

pub(crate) fn encode_context(state: &[u8], conns: &[ConnContext]) -> Bytes {
    let n = conns.len().min(MAX_CONNS_IN_CONTEXT);
    let size: usize = conns[..n]
        .iter()
        .map(|c| 2 * 19 + 12 + c.input.len() + c.output.len())
        .sum();
    let mut b = BytesMut::with_capacity(4 + 4 + state.len() + 2 + size);
    b.put_slice(MAGIC);
    b.put_u32(state.len() as u32);
    b.put_slice(state);
    b.put_u16(n as u16);
    for c in &conns[..n] {
        put_conn(&mut b, &c.conn);
        b.put_u32(c.next_seq);
        put_buf(&mut b, &c.input);
        put_buf(&mut b, &c.output);
    }
    b.freeze()
}

fn get_buf(b: &mut &[u8], cap: usize, what: &str) -> Result<Vec<u8>, String> {
    need(b, 4)?;
    let n = b.get_u32() as usize;
    if n > cap {
        return Err(format!("{what} of {n} octets (at most {cap})"));
    }
    need(b, n)?;
    let v = b[..n].to_vec();
    b.advance(n);
    Ok(v)
}

fn get_conn_context(b: &mut &[u8]) -> Result<ConnContext, String> {
    let conn = get_conn(b)?;
    need(b, 4)?;
    Ok(ConnContext {
        conn,
        next_seq: b.get_u32(),
        input: get_buf(b, INPUT_CAP, "input")?,
        output: get_buf(b, OUTPUT_CAP, "output")?,
    })
}

/// Parse a context. Every length is checked against its cap and against
/// what is left before anything is allocated.
pub(crate) fn decode_context(mut b: &[u8]) -> Result<UeContext, String> {
    take_magic(&mut b, MAGIC, 4)?;
    let size = b.get_u32();
    if size > MAX_STATE_BYTES {
        return Err(format!("state of {size} octets"));
    }
    need(b, size as usize)?;
    let state = b[..size as usize].to_vec();
    b.advance(size as usize);
    let n = get_count(&mut b, MAX_CONNS_IN_CONTEXT, "connections")?;
    let conns = (0..n)
        .map(|_| get_conn_context(&mut b))
        .collect::<Result<Vec<_>, _>>()?;
    at_end(b, "connection")?;
    Ok(UeContext { state, conns })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> UeContext {
        UeContext {
            state: (0..=255u8).cycle().take(1000).collect(),
            conns: vec![
                ConnContext {
                    conn: Connection {
                        client: "10.0.0.7:40000".parse().unwrap(),
                        server: "192.0.2.1:8081".parse().unwrap(),
                    },
                    next_seq: 77,
                    input: b"RQ\0\0".to_vec(),
                    output: b"RS\0\0\0\x4d\0".to_vec(),
                },
                ConnContext::fresh(Connection {
                    client: "[2001:db8::7]:40001".parse().unwrap(),
                    server: "[2001:db8::1]:8081".parse().unwrap(),
                }),
            ],
        }
    }

    #[test]
    fn context_round_trip_and_rejects() {
        let c = sample();
        let b = encode_context(&c.state, &c.conns);
        assert_eq!(decode_context(&b).unwrap(), c);
        for cut in 0..b.len() {
            assert!(decode_context(&b[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = b.to_vec();
        long.push(0);
        assert!(decode_context(&long).is_err());
        let mut bad = b.to_vec();
        bad[3] = b'2';
        assert!(decode_context(&bad).is_err());
        // an empty state and no connections
        let e = encode_context(&[], &[]);
        assert_eq!(
            decode_context(&e).unwrap(),
            UeContext {
                state: vec![],
                conns: vec![]
            }
        );
        // lengths beyond their caps, whatever follows
        let mut huge = b"SES1".to_vec();
        huge.extend_from_slice(&(MAX_STATE_BYTES + 1).to_be_bytes());
        assert!(decode_context(&huge).is_err());
        let mut many = e.to_vec();
        many[8..10].copy_from_slice(&(MAX_CONNS_IN_CONTEXT as u16 + 1).to_be_bytes());
        assert!(decode_context(&many).is_err());
        let one = encode_context(&[], &c.conns[1..]);
        let mut big_in = one.to_vec();
        let at = one.len() - 8; // in_len of the last (empty) connection
        big_in[at..at + 4].copy_from_slice(&(INPUT_CAP as u32 + 1).to_be_bytes());
        assert!(decode_context(&big_in).unwrap_err().contains("input"));
    }
}
