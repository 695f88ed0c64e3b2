//! mihctl: talk to a running mihfd as a local MIH-User.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use daemon_kit::http::get_ok as http_get;
use mihf::daemon::client::SapClient;
use mihf::proto::sap::Registration;
use mihf::proto::status::status_of;
use mihf::wire::message::*;
use mihf::wire::*;

/// Act as a local MIH-User of mihfd: send MIH commands to peer MIHFs and
/// print the confirms; list peers; print counters.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// The mihfd MIH_SAP address.
    #[arg(long, default_value = "127.0.0.1:1025", global = true)]
    sap: SocketAddr,
    /// The mihfd metrics/admin HTTP address (for `peers` and `counters`).
    #[arg(long, default_value = "127.0.0.1:9551", global = true)]
    admin: SocketAddr,
    /// Our MIH-User ID.
    #[arg(long, default_value = "mihctl", global = true)]
    user_id: String,
    /// How long to wait for a confirm, in milliseconds.
    #[arg(long, default_value_t = 20_000, global = true)]
    timeout_ms: u64,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// MIH_N2N_HO_Commit.request to a peer MIHF.
    N2nCommit {
        #[arg(long)]
        peer: String,
        #[arg(long)]
        mn_id: String,
        /// MN link MAC address (aa:bb:cc:dd:ee:ff).
        #[arg(long)]
        mn_mac: String,
        /// PoA MAC address.
        #[arg(long)]
        poa_mac: String,
        /// LINK_TYPE of the MN link (19 = IEEE 802.11, 23 = UMTS, 27 = 802.16).
        #[arg(long, default_value_t = 19)]
        link_type: u8,
        /// HO_CAUSE of the requested resource set (0 = explicit disconnect).
        #[arg(long, default_value_t = 0)]
        ho_cause: u8,
    },
    /// MIH_N2N_HO_Query_Resources.request to a peer MIHF.
    N2nQueryResources {
        #[arg(long)]
        peer: String,
        #[arg(long)]
        mn_id: Option<String>,
    },
    /// MIH_N2N_HO_Complete.request to a peer MIHF.
    N2nComplete {
        #[arg(long)]
        peer: String,
        #[arg(long)]
        mn_id: String,
        /// Old link MAC.
        #[arg(long)]
        mac: String,
        /// New link MAC.
        #[arg(long)]
        new_mac: String,
        #[arg(long, value_enum, default_value_t = HoOutcome::Success)]
        result: HoOutcome,
    },
    /// MIH_Capability_Discover.request (to a peer, or to our own MIHF ID);
    /// mihfd advertises its own capabilities in it.
    Discover {
        #[arg(long)]
        peer: String,
    },
    /// MIH_Register.request to a peer MIHF.
    Register {
        #[arg(long)]
        peer: String,
        #[arg(long, default_value = "02:00:00:00:00:01")]
        link_mac: String,
    },
    /// MIH_DeRegister.request to a peer MIHF.
    Deregister {
        #[arg(long)]
        peer: String,
    },
    /// MIH_Event_Subscribe.request, then print events as they arrive.
    Subscribe {
        #[arg(long)]
        peer: String,
        #[arg(long)]
        link_mac: String,
        /// Comma-separated: link_detected, link_up, link_down, link_going_down, ...
        #[arg(long, default_value = "link_up,link_down")]
        events: String,
        /// Print this many events, then exit (0 = only subscribe).
        #[arg(long, default_value_t = 0)]
        wait: usize,
    },
    /// Publish a link event (as an event source) to the local MIHF's subscribers.
    Publish {
        #[arg(long, value_enum)]
        event: EventKind,
        #[arg(long)]
        link_mac: String,
        /// The local MIHF ID.
        #[arg(long)]
        mihf: String,
        /// Stay registered this long before publishing (ms), so subscribers can subscribe.
        #[arg(long, default_value_t = 0)]
        delay_ms: u64,
    },
    /// Serve N2N/Net handover commands: answer each indication with a status.
    Answer {
        #[arg(long, value_enum, default_value_t = Answer::Success)]
        status: Answer,
        /// Answer this many, then exit (0 = forever).
        #[arg(long, default_value_t = 0)]
        count: usize,
    },
    /// List the peer table (and users) of mihfd, with discovered capabilities.
    Peers,
    /// Print mihfd's counters (Prometheus text without comments).
    Counters,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum HoOutcome {
    Success,
    Failure,
    Rejected,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Answer {
    Success,
    Rejected,
    Failure,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum EventKind {
    LinkUp,
    LinkDown,
}

fn mac(s: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return Err(format!("`{s}` is not a MAC address (aa:bb:cc:dd:ee:ff)"));
    }
    let mut m = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        m[i] = u8::from_str_radix(p, 16).map_err(|_| format!("`{s}` is not a MAC address"))?;
    }
    Ok(m)
}

fn link_tuple(m: [u8; 6]) -> LinkTupleId {
    LinkTupleId {
        link: LinkId {
            link_type: LinkType::IEEE_802_11,
            addr: LinkAddr::mac(m),
        },
        poa: None,
    }
}

fn events(s: &str) -> Result<EventList, String> {
    let mut e = EventList(0);
    for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        e = e | match name {
            "link_detected" => EventList::LINK_DETECTED,
            "link_up" => EventList::LINK_UP,
            "link_down" => EventList::LINK_DOWN,
            "link_parameters_report" => EventList::LINK_PARAMETERS_REPORT,
            "link_going_down" => EventList::LINK_GOING_DOWN,
            "link_handover_imminent" => EventList::LINK_HANDOVER_IMMINENT,
            "link_handover_complete" => EventList::LINK_HANDOVER_COMPLETE,
            other => return Err(format!("unknown event `{other}`")),
        };
    }
    Ok(e)
}

fn id(s: &str) -> MihfId {
    MihfId::new(s.to_string().into_bytes())
}

fn request(mid: u16, peer: &str, body: Body) -> Message {
    Message::new(Mid(mid), 0, MihfId::default(), id(peer), body)
}

fn print_message(m: &Message) {
    let status = status_of(m)
        .map(|s| format!(" Status={} ({})", s.label().unwrap_or("?"), s.0))
        .unwrap_or_default();
    println!(
        "{} from {} (TID {}){status}",
        m.name(),
        m.source,
        m.header.tid
    );
    println!("{:#?}", m.body);
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mihctl: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(a: Args) -> Result<ExitCode, String> {
    let timeout = Duration::from_millis(a.timeout_ms);
    let reg = |commands: CommandList, events: EventList| Registration {
        user_id: id(&a.user_id),
        commands,
        events,
        queries: IsQueryTypeList(0),
    };
    let msg = match &a.cmd {
        Cmd::Peers => {
            let body = http_get(a.admin, "/peers")
                .await
                .map_err(|e| format!("{}: {e}", a.admin))?;
            let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or(body));
            return Ok(ExitCode::SUCCESS);
        }
        Cmd::Counters => {
            let body = http_get(a.admin, "/metrics")
                .await
                .map_err(|e| format!("{}: {e}", a.admin))?;
            for l in body.lines().filter(|l| !l.starts_with('#')) {
                println!("{l}");
            }
            return Ok(ExitCode::SUCCESS);
        }
        Cmd::Answer { status, count } => {
            let mut c = SapClient::connect(
                a.sap,
                reg(CommandList::NET_HO | CommandList::MN_HO, EventList(0)),
            )
            .await
            .map_err(|e| format!("{}: {e}", a.sap))?;
            let st = match status {
                Answer::Success => Status::SUCCESS,
                Answer::Rejected => Status::REJECTED,
                Answer::Failure => Status::UNSPECIFIED_FAILURE,
            };
            let mut n = 0;
            while *count == 0 || n < *count {
                let ind = c.recv().await.map_err(|e| e.to_string())?;
                if ind.header.mid.opcode() != Opcode::Indication {
                    continue;
                }
                print_message(&ind);
                let (body, _) = mihf::proto::status::failure_body(&ind.body, st);
                let rsp = Message::new(Mid(0), 0, MihfId::default(), MihfId::default(), body);
                c.respond(&ind, rsp).await.map_err(|e| e.to_string())?;
                n += 1;
            }
            let _ = c.deregister().await;
            return Ok(ExitCode::SUCCESS);
        }
        Cmd::Publish {
            event,
            link_mac,
            mihf,
            delay_ms,
        } => {
            let link = link_tuple(mac(link_mac)?);
            let (bit, m) = match event {
                EventKind::LinkUp => (
                    EventList::LINK_UP,
                    Message::new(
                        Mid(0x2c02),
                        0,
                        id(&a.user_id),
                        id(mihf),
                        Body::LinkUp(LinkUpIndication {
                            link,
                            old_access_router: None,
                            new_access_router: None,
                            ip_renewal: None,
                            mobility_management: None,
                        }),
                    ),
                ),
                EventKind::LinkDown => (
                    EventList::LINK_DOWN,
                    Message::new(
                        Mid(0x2c03),
                        0,
                        id(&a.user_id),
                        id(mihf),
                        Body::LinkDown(LinkDownIndication {
                            link,
                            old_access_router: None,
                            reason: LinkDnReason::EXPLICIT_DISCONNECT,
                        }),
                    ),
                ),
            };
            let c = SapClient::connect(a.sap, reg(CommandList(0), bit))
                .await
                .map_err(|e| format!("{}: {e}", a.sap))?;
            tokio::time::sleep(Duration::from_millis(*delay_ms)).await;
            c.send(&m).await.map_err(|e| e.to_string())?;
            println!("published {}", m.name());
            return Ok(ExitCode::SUCCESS);
        }
        Cmd::N2nCommit {
            peer,
            mn_id,
            mn_mac,
            poa_mac,
            link_type,
            ho_cause,
        } => request(
            0x3409,
            peer,
            Body::N2nHoCommitRequest(N2nHoCommitRequest {
                mn_mihf_id: id(mn_id),
                mn_link_id: LinkId {
                    link_type: LinkType(*link_type),
                    addr: LinkAddr::mac(mac(mn_mac)?),
                },
                poa: LinkAddr::mac(mac(poa_mac)?),
                requested_resources: Some(ReqResSet {
                    qos: QosList::new(0, &[], &[], &[], &[], &[]),
                    tsp: TspContainer::Null,
                    ho_cause: HoCause(*ho_cause),
                }),
            }),
        ),
        Cmd::N2nQueryResources { peer, mn_id } => request(
            0x3406,
            peer,
            Body::N2nHoQueryResourcesRequest(N2nHoQueryResourcesRequest {
                mn_mihf_id: mn_id.as_deref().map(id),
                query: QosList::new(0, &[], &[], &[], &[], &[]),
                ip_cfg_methods: None,
                dhcp_server: None,
                fa_addr: None,
                access_router: None,
                link_ids: None,
            }),
        ),
        Cmd::N2nComplete {
            peer,
            mn_id,
            mac: old,
            new_mac,
            result,
        } => request(
            0x340b,
            peer,
            Body::N2nHoCompleteRequest(N2nHoCompleteRequest {
                mn_mihf_id: id(mn_id),
                link: link_tuple(mac(old)?),
                new_link: link_tuple(mac(new_mac)?),
                result: match result {
                    HoOutcome::Success => HoResult::SUCCESS,
                    HoOutcome::Failure => HoResult::FAILURE,
                    HoOutcome::Rejected => HoResult::REJECTED,
                },
            }),
        ),
        Cmd::Discover { peer } => request(
            0x1401,
            peer,
            Body::CapabilityDiscoverRequest(CapabilityDiscoverRequest {
                link_addr_list: None,
                event_list: None,
                command_list: None,
                is_query_types: None,
                transports: None,
                mbb_ho_support: None,
            }),
        ),
        Cmd::Register { peer, link_mac } => request(
            0x1402,
            peer,
            Body::RegisterRequest(RegisterRequest {
                link_ids: List::from_items([link_tuple(mac(link_mac)?).link].iter()),
                request_code: RegRequestCode::REGISTRATION,
            }),
        ),
        Cmd::Deregister { peer } => {
            request(0x1403, peer, Body::DeRegisterRequest(DeRegisterRequest {}))
        }
        Cmd::Subscribe {
            peer,
            link_mac,
            events: ev,
            ..
        } => request(
            0x1404,
            peer,
            Body::EventSubscribeRequest(EventSubscribeRequest {
                link: link_tuple(mac(link_mac)?),
                events: events(ev)?,
                config: None,
            }),
        ),
    };
    let mut c = SapClient::connect(a.sap, reg(CommandList(0), EventList(0)))
        .await
        .map_err(|e| format!("{}: {e}", a.sap))?;
    let cnf = c.request(msg, timeout).await.map_err(|e| e.to_string())?;
    print_message(&cnf);
    let ok = status_of(&cnf).is_none_or(|s| s.is_success());
    if let (Cmd::Subscribe { wait, .. }, true) = (&a.cmd, ok) {
        let mut n = 0;
        while n < *wait {
            let m = c.recv().await.map_err(|e| e.to_string())?;
            if m.header.mid.sid() == ServiceId::EVENT {
                print_message(&m);
                n += 1;
            }
        }
    }
    let _ = c.deregister().await;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}
