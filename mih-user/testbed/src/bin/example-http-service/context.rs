//! The context: what the service hands the MIH-User at the export and gets
//! back at the import, for one UE (version 1, big-endian):
//!
//! `"HTD1" | file size u64 | seed u64 | count u16 | count × (client addr |
//! server addr | offset u64 | end u64 | name length u8 | name)`, where an
//! address is `family u8 (4|6) | 4 or 16 octets | port u16`.
//!
//! The MIH-User carries these octets opaquely (CXTP, `--fpt`); only the
//! service at the other end reads them, so their format is the service's
//! own choice.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use mih_user::api::wire::Connection;
use testbed::svc_kit::{at_end, get_conn, get_count, need, put_conn, take_magic};

use crate::http::valid_name;

/// One download in a context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DownloadState {
    pub(crate) conn: Connection,
    pub(crate) name: String,
    /// Next octet to send.
    pub(crate) offset: u64,
    /// End of the range (exclusive).
    pub(crate) end: u64,
}

const MAGIC: &[u8; 4] = b"HTD1";
const MAX_DOWNLOADS_IN_CONTEXT: usize = 1024;

pub(crate) fn encode_context(file_size: u64, seed: u64, downloads: &[DownloadState]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_slice(MAGIC);
    b.put_u64(file_size);
    b.put_u64(seed);
    let n = downloads.len().min(MAX_DOWNLOADS_IN_CONTEXT);
    b.put_u16(n as u16);
    for d in &downloads[..n] {
        put_conn(&mut b, &d.conn);
        b.put_u64(d.offset);
        b.put_u64(d.end);
        b.put_u8(d.name.len() as u8);
        b.put_slice(d.name.as_bytes());
    }
    b.freeze()
}

/// Parse a context; returns (file size, seed, downloads).
pub(crate) fn decode_context(mut b: &[u8]) -> Result<(u64, u64, Vec<DownloadState>), String> {
    take_magic(&mut b, MAGIC, 18)?;
    let size = b.get_u64();
    let seed = b.get_u64();
    let n = get_count(&mut b, MAX_DOWNLOADS_IN_CONTEXT, "downloads")?;
    let mut v = Vec::with_capacity(n.min(b.remaining() / 30));
    for _ in 0..n {
        let conn = get_conn(&mut b)?;
        need(b, 17)?;
        let offset = b.get_u64();
        let end = b.get_u64();
        let len = b.get_u8() as usize;
        need(b, len)?;
        let name = std::str::from_utf8(&b[..len])
            .map_err(|_| "file name is not UTF-8".to_string())?
            .to_string();
        b.advance(len);
        if !valid_name(&name) || offset > end || end > size {
            return Err(format!("invalid download {name:?} {offset}..{end}"));
        }
        v.push(DownloadState {
            conn,
            name,
            offset,
            end,
        });
    }
    at_end(b, "download")?;
    Ok((size, seed, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_round_trip_and_rejects() {
        let d = vec![
            DownloadState {
                conn: Connection {
                    client: "10.0.0.7:40000".parse().unwrap(),
                    server: "192.0.2.1:80".parse().unwrap(),
                },
                name: "video.bin".into(),
                offset: 12345,
                end: 99999,
            },
            DownloadState {
                conn: Connection {
                    client: "[2001:db8::7]:40001".parse().unwrap(),
                    server: "[2001:db8::1]:80".parse().unwrap(),
                },
                name: "b".into(),
                offset: 0,
                end: 1,
            },
        ];
        let b = encode_context(100_000, 9, &d);
        assert_eq!(decode_context(&b).unwrap(), (100_000, 9, d));
        for cut in 0..b.len() {
            assert!(decode_context(&b[..cut]).is_err());
        }
        assert!(decode_context(&encode_context(10, 9, &[])).is_ok());
    }
}
