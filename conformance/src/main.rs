use std::io::Read;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use conformance::Proto;

/// Decode and encode protocol frames of the edge-mobility stack (IEEE 802.21 MIH, RFC 4067 CXTP).
#[derive(Parser)]
#[command(name = "conformance", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum ProtoArg {
    /// IEEE 802.21 MIH protocol frame (header + TLVs)
    Mih,
    /// RFC 4067 CXTP message
    Cxtp,
    /// 3GPP TS 36.423 X2AP PDU (APER), as the MIH-User's handover trigger reads it (decode only)
    X2ap,
}

impl From<ProtoArg> for Proto {
    fn from(p: ProtoArg) -> Self {
        match p {
            ProtoArg::Mih => Proto::Mih,
            ProtoArg::Cxtp => Proto::Cxtp,
            ProtoArg::X2ap => Proto::X2ap,
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Decode one frame and print it as JSON.
    Decode {
        #[arg(long, value_enum)]
        proto: ProtoArg,
        /// Frame as hex (spaces allowed); read from stdin when absent and no --file is given.
        hex: Option<String>,
        /// Read the raw binary frame from this file instead.
        #[arg(long, conflicts_with = "hex")]
        file: Option<std::path::PathBuf>,
        /// Print compact JSON on one line.
        #[arg(long)]
        compact: bool,
    },
    /// Encode a frame from its JSON form (argument or stdin) and print it as hex.
    Encode {
        #[arg(long, value_enum)]
        proto: ProtoArg,
        /// JSON text; read from stdin when absent.
        json: Option<String>,
        /// Write the raw binary frame to this file instead of printing hex.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
}

fn read_stdin() -> Result<String, String> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(|e| format!("cannot read stdin: {e}"))?;
    Ok(s)
}

fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let clean: String = text
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':')
        .collect();
    let clean = clean.strip_prefix("0x").unwrap_or(&clean);
    hex::decode(clean).map_err(|e| format!("bad hex input: {e}"))
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.cmd {
        Cmd::Decode {
            proto,
            hex,
            file,
            compact,
        } => {
            let bytes = match (hex, file) {
                (_, Some(path)) => std::fs::read(&path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
                (Some(h), None) => parse_hex(&h)?,
                (None, None) => parse_hex(&read_stdin()?)?,
            };
            let value = conformance::decode(proto.into(), &bytes)?;
            let text = if compact {
                serde_json::to_string(&value)
            } else {
                serde_json::to_string_pretty(&value)
            }
            .map_err(|e| e.to_string())?;
            println!("{text}");
            Ok(())
        }
        Cmd::Encode { proto, json, out } => {
            let text = match json {
                Some(j) => j,
                None => read_stdin()?,
            };
            let value: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| format!("bad JSON input: {e}"))?;
            let bytes = conformance::encode(proto.into(), &value)?;
            match out {
                Some(path) => std::fs::write(&path, &bytes)
                    .map_err(|e| format!("cannot write {}: {e}", path.display())),
                None => {
                    println!("{}", hex::encode(bytes));
                    Ok(())
                }
            }
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("conformance: {e}");
            ExitCode::FAILURE
        }
    }
}
