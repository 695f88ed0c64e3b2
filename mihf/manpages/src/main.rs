//! Writes the man pages of `mihfd` and `mih-user` (section 8) from their
//! clap definitions, which it includes from the daemons' own files: the
//! pages cannot drift from `--help`, and the daemons carry no man page
//! flag.
//!
//! ```sh
//! cargo run --release -p manpages            # into <target dir>/release/man/
//! cargo run --release -p manpages -- OUTDIR  # or into OUTDIR
//! ```
//!
//! The default directory is `man/` next to this binary, which is where the
//! packages' `target/release/man/...` assets point whatever
//! `CARGO_TARGET_DIR` is (cargo-deb maps `target/release/` to the real
//! target directory). Pages written: `mihfd.8`, `mih-user.8` and one
//! `mih-user-<command>.8` per operator command.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::CommandFactory;

#[allow(dead_code)] // the fields are read by mihfd, not here
#[path = "../../src/bin/mihfd/cli.rs"]
mod mihfd_cli;

#[allow(dead_code)]
#[path = "../../../mih-user/src/bin/mih-user/cli.rs"]
mod mih_user_cli;

/// Sections clap does not know about, in roff, for the daemons' pages:
/// where the packages put things, exit status, environment, see also.
fn extra_sections(name: &str) -> &'static str {
    match name {
        "mihfd" => {
            r#".SH "EXIT STATUS"
0 after SIGINT or SIGTERM, or when \fB\-\-check\fR found the configuration valid;
2 when the configuration cannot be read or is invalid (the message names the key);
1 when the daemon cannot start (e.g. an address in use).
.SH ENVIRONMENT
.TP
\fBRUST_LOG\fR
Log filter (tracing\-subscriber syntax); \fB\-\-log\-level\fR when unset. Logs go to standard error.
.SH FILES
.TP
\fI/etc/mihfd/mihfd.toml\fR
The configuration the \fBmihfd.service\fR unit runs with (installed as an example: set \fBmihf_id\fR and the \fB[[peers]]\fR).
.TP
\fI/usr/share/doc/mihfd/README.md\fR
The configuration reference, timers, limits and metrics.
.SH "SEE ALSO"
\fBmih\-user\fR(8), \fBsystemctl\fR(1), \fBsystemd.exec\fR(5)
"#
        }
        "mih-user" => {
            r#".SH "EXIT STATUS"
The daemon: 0 after SIGINT or SIGTERM (handovers under way rolled back), or when
\fB\-\-check\fR found the configuration valid; 2 when the configuration cannot be
read or is invalid; 1 when it cannot start. The operator commands: 0 committed
(or done), 3 rolled back or refused, 1 error.
.SH ENVIRONMENT
.TP
\fBRUST_LOG\fR
Log filter (tracing\-subscriber syntax); \fB\-\-log\-level\fR when unset. Logs go to standard error.
.SH FILES
.TP
\fI/etc/mih\-user/mih\-user.toml\fR
The configuration the \fBmih\-user.service\fR unit runs with (installed as an example).
.TP
\fI/run/mih\-user/\fR
The unit's runtime directory (group \fBmih\-user\fR): the Service Mobility API socket
(\fBapi.socket\fR), the operator socket (\fBcontrol.socket\fR) and the socket hand\-off socket
(\fBsessions.handoff_socket\fR). Local services connect as members of the group.
.TP
\fI/var/lib/mih\-user/journal/\fR
The session journal (\fBsessions.journal_dir\fR, mode \fBtcp_repair\fR): what a source froze,
read back after a restart. Kept across reboots.
.TP
\fI/usr/share/doc/mih\-user/README.md\fR
The configuration reference, TCP session migration, the journal and the metrics.
.SH "SEE ALSO"
\fBmihfd\fR(8), \fBmih\-user\-handover\fR(8), \fBmih\-user\-status\fR(8),
\fBmih\-user\-abort\fR(8), \fBsystemd.exec\fR(5)
"#
        }
        _ => "",
    }
}

fn render(page: clap::Command, extra: &str) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(page)
        .section("8")
        .source(format!("edge-mobility {}", env!("CARGO_PKG_VERSION")))
        .manual("System Manager's Manual")
        .render(&mut buf)?;
    if extra.is_empty() {
        return Ok(buf);
    }
    // Before VERSION (the last section clap writes here), else at the end.
    let text = String::from_utf8(buf).map_err(std::io::Error::other)?;
    let at = text.find("\n.SH VERSION").map_or(text.len(), |i| i + 1);
    Ok(format!("{}{extra}{}", &text[..at], &text[at..]).into_bytes())
}

fn write_pages(cmd: clap::Command, out: &std::path::Path) -> std::io::Result<Vec<PathBuf>> {
    // clap's own `help` subcommand (`mih-user help handover`) would be a
    // page of its own listing pages of its own; `--help` is on every page.
    let cmd = cmd.disable_help_subcommand(true);
    let mut written = Vec::new();
    // The command itself, then each subcommand as `<name>-<sub>`, the
    // names clap_mangen's SUBCOMMANDS section refers to.
    let mut pages = vec![(cmd.clone(), extra_sections(cmd.get_name()))];
    for sub in cmd.get_subcommands() {
        // A builder name must be 'static (clap without its "string" feature).
        let name: &'static str = format!("{}-{}", cmd.get_name(), sub.get_name()).leak();
        let usage: &'static str = format!("{} {}", cmd.get_name(), sub.get_name()).leak();
        pages.push((sub.clone().name(name).bin_name(usage), ""));
    }
    for (page, extra) in pages {
        let path = out.join(format!("{}.8", page.get_name()));
        std::fs::write(&path, render(page, extra)?)?;
        written.push(path);
    }
    Ok(written)
}

fn main() -> ExitCode {
    let out = match std::env::args_os().nth(1) {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::current_exe() {
            Ok(exe) => exe.parent().map(|d| d.join("man")).unwrap_or_default(),
            Err(e) => {
                eprintln!("manpages: where am I? {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    if let Err(e) = std::fs::create_dir_all(&out) {
        eprintln!("manpages: {}: {e}", out.display());
        return ExitCode::FAILURE;
    }
    for cmd in [mihfd_cli::Args::command(), mih_user_cli::Args::command()] {
        match write_pages(cmd, &out) {
            Ok(paths) => {
                for p in paths {
                    println!("{}", p.display());
                }
            }
            Err(e) => {
                eprintln!("manpages: {}: {e}", out.display());
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
