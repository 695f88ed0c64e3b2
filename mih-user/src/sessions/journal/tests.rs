use super::*;

fn session(port: u16, queued: usize) -> TcpSessionContext {
    TcpSessionContext {
        local: "10.99.0.1:8080".parse().unwrap(),
        remote: std::net::SocketAddr::from(([10, 77, 0, 2], port)),
        send_seq: 0x1234_5678,
        recv_seq: 0x9abc_def0,
        mss: 1448,
        snd_wscale: 7,
        rcv_wscale: 6,
        sack: true,
        timestamps: true,
        window_scaling: true,
        timestamp: 42,
        snd_wl1: 1,
        snd_wnd: 2,
        max_window: 3,
        rcv_wnd: 4,
        rcv_wup: 5,
        unacked: Bytes::from(vec![1u8; queued]),
        unsent: Bytes::from(vec![2u8; queued / 2]),
        recv_queue: Bytes::from_static(b"GET /file/x HTTP/1.1\r\n"),
    }
}

fn record(id: u64) -> Record {
    Record {
        created_unix_ms: 1_700_000_000_000 + id,
        handover_id: id,
        attempt: NonZeroU32::new(0x8000_0000 + id as u32),
        ue: "10.77.0.2".parse().unwrap(),
        peer: "enbc2".into(),
        services: vec!["http-download".into(), "video".into()],
        hooks: HookSpecs {
            hold: Some(r#"{"netns":"ue","route":"10.99.0.1/32","via":"blackhole"}"#.into()),
            release: None,
            path_switch: Some(r#"{"command":["true","{ue}"]}"#.into()),
        },
        sessions: vec![session(40000, 1000), session(40001, 0)],
        x2_trigger: id % 2 == 1,
    }
}

fn cfg(dir: &Path) -> JournalConfig {
    JournalConfig::new(dir.join("journal"))
}

fn entry_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|d| d.file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".lock" && n != ASIDE)
        .collect();
    v.sort();
    v
}

fn aside_files(dir: &Path) -> Vec<String> {
    let Ok(rd) = fs::read_dir(dir.join(ASIDE)) else {
        return Vec::new();
    };
    let mut v: Vec<String> = rd
        .flatten()
        .map(|d| d.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn write_read_round_trip_and_phase_updates() {
    let d = tempfile::tempdir().unwrap();
    let c = cfg(d.path());
    let (j, scan) = Journal::open(c.clone()).unwrap();
    assert!(scan.entries.is_empty() && scan.bad.is_empty());
    let mode = fs::metadata(j.dir()).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o700
    );
    let r1 = record(1);
    let mut r2 = record(2);
    r2.ue = "2001:db8::7".parse().unwrap();
    r2.attempt = None;
    r2.hooks = HookSpecs::default();
    r2.services.clear();
    r2.sessions.clear();
    let mut h1 = j.create(&r1, Phase::Exported).unwrap();
    let h2 = j.create(&r2, Phase::Exported).unwrap();
    assert_eq!(j.held().0, 2);
    let file_mode = fs::metadata(h1.path()).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&file_mode) & 0o777,
        0o600
    );
    h1.set_phase(Phase::Sent, false).unwrap();
    assert_eq!(h1.phase(), Phase::Sent);
    drop((h1, h2));
    drop(j);

    // A new process reads both, oldest first, byte for byte.
    let (j, scan) = Journal::open(c.clone()).unwrap();
    assert_eq!(scan.entries.len(), 2, "{scan:?}");
    let (e1, mut h1) = scan.entries.into_iter().next().unwrap();
    assert_eq!(e1.record, r1);
    assert_eq!(e1.phase, Phase::Sent);
    assert!(!e1.peer_refused);
    // Every later phase, and the refused flag.
    h1.set_phase(Phase::RolledBack, true).unwrap();
    drop(h1);
    drop(j);
    let (j, scan) = Journal::open(c.clone()).unwrap();
    let e1 = &scan.entries[0].0;
    assert_eq!((e1.phase, e1.peer_refused), (Phase::RolledBack, true));
    let e2 = &scan.entries[1].0;
    assert_eq!(e2.record, r2);
    assert_eq!(e2.phase, Phase::Exported);
    let mut it = scan.entries.into_iter();
    let (_, mut h1) = it.next().unwrap();
    let (_, h2) = it.next().unwrap();
    h1.set_phase(Phase::Committed, false).unwrap();
    j.remove(h2).unwrap();
    drop(h1);
    drop(j);
    let (j, scan) = Journal::open(c).unwrap();
    assert_eq!(scan.entries.len(), 1);
    assert_eq!(scan.entries[0].0.phase, Phase::Committed);
    let (_, h) = scan.entries.into_iter().next().unwrap();
    j.remove(h).unwrap();
    assert_eq!(j.held(), (0, 0));
    assert!(
        entry_files(j.dir()).is_empty(),
        "{:?}",
        entry_files(j.dir())
    );
}

#[test]
fn the_encoding_is_the_cxtp_session_encoding() {
    let r = record(3);
    let file = encode(&r, Phase::Sent, false).unwrap();
    assert_eq!(&file[..8], MAGIC);
    let (_, one) = r.sessions[0].encode();
    // The session's CXTP context octets are in the file as they are.
    assert!(file.windows(one.len()).any(|w| w == &one[..]));
    let e = decode(Path::new("x.jrnl"), file).unwrap();
    assert_eq!(e.record, r);
    assert_eq!(e.name, "x.jrnl");
}

#[test]
fn a_crash_between_temp_write_and_rename_leaves_the_old_state() {
    let d = tempfile::tempdir().unwrap();
    let c = cfg(d.path());
    let (j, _) = Journal::open(c.clone()).unwrap();
    let old = j.create(&record(1), Phase::Sent).unwrap();
    let old_name = old.name().to_string();
    let old_bytes = fs::read(old.path()).unwrap();
    // The second entry is written and fsynced, but the process dies
    // before the rename.
    let (tmp, path, _, file, _) = j.write_temp(&record(2), Phase::Exported).unwrap();
    assert!(tmp.exists() && !path.exists());
    drop((file, old));
    drop(j);
    let (j, scan) = Journal::open(c).unwrap();
    assert_eq!(scan.removed_temp, 1);
    assert!(!tmp.exists());
    assert_eq!(scan.entries.len(), 1);
    assert_eq!(scan.entries[0].0.name, old_name);
    assert_eq!(scan.entries[0].0.record, record(1));
    assert_eq!(fs::read(scan.entries[0].1.path()).unwrap(), old_bytes);
    assert_eq!(entry_files(j.dir()), vec![old_name]);
}

#[test]
fn corrupt_and_truncated_entries_are_typed_errors_and_moved_aside() {
    let d = tempfile::tempdir().unwrap();
    let c = cfg(d.path());
    let (j, _) = Journal::open(c.clone()).unwrap();
    let good = j.create(&record(1), Phase::Sent).unwrap();
    let good_name = good.name().to_string();
    let bytes = encode(&record(2), Phase::Sent, false).unwrap().to_vec();
    let dir = j.dir().to_path_buf();
    let write = |name: &str, b: &[u8]| fs::write(dir.join(name), b).unwrap();
    let mut flipped = bytes.clone();
    let n = flipped.len();
    flipped[n - 10] ^= 0x40;
    write("a-flipped.jrnl", &flipped);
    write("b-truncated.jrnl", &bytes[..bytes.len() - 7]);
    write("c-short.jrnl", &bytes[..20]);
    write("d-empty.jrnl", b"");
    let mut magic = bytes.clone();
    magic[0] = b'X';
    write("e-magic.jrnl", &magic);
    let mut phase = bytes.clone();
    phase[16] = 2;
    phase[17] = 0x80; // the phase block's checksum no longer matches
    write("f-phase.jrnl", &phase);
    let mut version = bytes.clone();
    version[8] = 9;
    write("g-version.jrnl", &version);
    let mut longer = bytes.clone();
    longer.extend_from_slice(b"junk");
    write("h-longer.jrnl", &longer);
    drop(good);
    drop(j);

    let (j, scan) = Journal::open(c).unwrap();
    assert_eq!(scan.entries.len(), 1);
    assert_eq!(scan.entries[0].0.name, good_name);
    assert_eq!(scan.bad.len(), 8, "{:?}", scan.bad);
    let by = |name: &str| {
        scan.bad
            .iter()
            .find(|e| e.to_string().contains(name))
            .unwrap_or_else(|| panic!("no error naming {name}: {:?}", scan.bad))
    };
    assert!(
        matches!(by("a-flipped"), JournalError::Corrupt { reason, .. } if reason.contains("checksum"))
    );
    assert!(matches!(
        by("b-truncated"),
        JournalError::Truncated { expected, found, .. } if expected - found == 7
    ));
    assert!(matches!(by("c-short"), JournalError::Truncated { .. }));
    assert!(matches!(
        by("d-empty"),
        JournalError::Truncated { found: 0, .. }
    ));
    assert!(
        matches!(by("e-magic"), JournalError::Corrupt { reason, .. } if reason.contains("magic"))
    );
    assert!(
        matches!(by("f-phase"), JournalError::Corrupt { reason, .. } if reason.contains("phase"))
    );
    assert!(
        matches!(by("g-version"), JournalError::Corrupt { reason, .. } if reason.contains("version"))
    );
    assert!(matches!(by("h-longer"), JournalError::Corrupt { .. }));
    for e in &scan.bad {
        assert!(e.is_bad_entry());
        assert!(e.to_string().contains(".jrnl"), "{e}");
    }
    // Moved aside, not deleted; only the good entry is left in place.
    let aside = aside_files(j.dir());
    assert_eq!(aside.len(), 8, "{aside:?}");
    assert!(aside.iter().all(|n| n.starts_with("corrupt-")), "{aside:?}");
    assert_eq!(
        fs::read(j.dir().join(ASIDE).join("corrupt-a-flipped.jrnl")).unwrap(),
        flipped
    );
    assert_eq!(entry_files(j.dir()), vec![good_name]);
    // A decode error never panics, whatever the octets.
    for cut in 0..bytes.len() {
        let _ = decode(Path::new("cut.jrnl"), Bytes::from(bytes[..cut].to_vec()));
    }
    for i in HEADER_LEN..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0xff;
        assert!(
            decode(Path::new("x.jrnl"), Bytes::from(b)).is_err(),
            "octet {i}"
        );
    }
}

#[test]
fn caps_on_entries_and_octets_are_checked() {
    let d = tempfile::tempdir().unwrap();
    let mut c = cfg(d.path());
    c.max_entries = 2;
    let (j, _) = Journal::open(c.clone()).unwrap();
    let a = j.create(&record(1), Phase::Exported).unwrap();
    let b = j.create(&record(2), Phase::Exported).unwrap();
    let e = j.create(&record(3), Phase::Exported).unwrap_err();
    assert!(
        matches!(
            e,
            JournalError::Full {
                entries: 2,
                max_entries: 2,
                ..
            }
        ),
        "{e}"
    );
    // Nothing of the refused entry is left behind.
    assert_eq!(entry_files(j.dir()).len(), 2);
    j.remove(a).unwrap();
    let c3 = j.create(&record(3), Phase::Exported).unwrap();
    drop((b, c3));
    drop(j);

    // Octets: one entry alone over the limit, and the total.
    let len = encode(&record(1), Phase::Exported, false).unwrap().len() as u64;
    let d = tempfile::tempdir().unwrap();
    let mut c = cfg(d.path());
    c.max_bytes = len + len / 2;
    let (j, _) = Journal::open(c.clone()).unwrap();
    let mut big = record(9);
    big.sessions[0].unacked = Bytes::from(vec![7u8; 4 * len as usize]);
    let e = j.create(&big, Phase::Exported).unwrap_err();
    assert!(matches!(e, JournalError::TooLarge { .. }), "{e}");
    let keep = j.create(&record(1), Phase::Exported).unwrap();
    let e = j.create(&record(2), Phase::Exported).unwrap_err();
    assert!(matches!(e, JournalError::Full { .. }), "{e}");
    assert_eq!(j.held(), (1, len));
    drop(keep);
    drop(j);
    // Read back: a file over max_bytes is refused before it is read.
    let name = entry_files(&c.dir)[0].clone();
    let mut small = c.clone();
    small.max_bytes = len - 1;
    let (_, scan) = Journal::open(small).unwrap();
    assert!(
        matches!(&scan.bad[..], [JournalError::TooLarge { len: l, .. }] if *l == len),
        "{:?}",
        scan.bad
    );
    assert_eq!(aside_files(&c.dir), vec![format!("corrupt-{name}")]);
}

#[test]
fn entries_over_the_cap_at_start_stay_in_place() {
    let d = tempfile::tempdir().unwrap();
    let c = cfg(d.path());
    let (j, _) = Journal::open(c.clone()).unwrap();
    for i in 1..=3 {
        drop(j.create(&record(i), Phase::Sent).unwrap());
    }
    drop(j);
    let mut two = c.clone();
    two.max_entries = 2;
    let (j, scan) = Journal::open(two).unwrap();
    // The oldest two are read; the third waits, untouched.
    assert_eq!(scan.entries.len(), 2);
    assert_eq!(scan.entries[0].0.record.handover_id, 1);
    assert_eq!(scan.entries[1].0.record.handover_id, 2);
    assert_eq!(scan.over_cap.len(), 1);
    assert!(scan.over_cap[0].exists());
    assert_eq!(j.held().0, 2);
}

#[test]
fn one_process_per_journal() {
    let d = tempfile::tempdir().unwrap();
    let c = cfg(d.path());
    let (j, _) = Journal::open(c.clone()).unwrap();
    let e = Journal::open(c.clone()).unwrap_err();
    assert!(matches!(e, JournalError::Locked { .. }), "{e}");
    assert!(e.to_string().contains(".lock"), "{e}");
    drop(j);
    Journal::open(c).unwrap();
}

#[test]
fn move_aside_keeps_the_entry_for_the_operator() {
    let d = tempfile::tempdir().unwrap();
    let c = cfg(d.path());
    let (j, _) = Journal::open(c.clone()).unwrap();
    let h = j.create(&record(1), Phase::Sent).unwrap();
    let name = h.name().to_string();
    let to = j.move_aside(h, "unresolved").unwrap();
    assert_eq!(to, j.dir().join(ASIDE).join(format!("unresolved-{name}")));
    assert_eq!(j.held(), (0, 0));
    // Still a valid entry, no longer read at start.
    assert_eq!(
        decode(&to, Bytes::from(fs::read(&to).unwrap()))
            .unwrap()
            .record,
        record(1)
    );
    drop(j);
    let (_, scan) = Journal::open(c).unwrap();
    assert!(scan.entries.is_empty() && scan.bad.is_empty());
}

#[test]
fn the_recovery_rule() {
    use Decision::*;
    use PeerAnswer::{Committed, RolledBack, Unknown};
    use Phase::{Exported, Sent};
    let answers = [None, Some(Committed), Some(RolledBack), Some(Unknown)];
    for a in answers {
        for over in [false, true] {
            for refused in [false, true] {
                // The source committed: whatever the destination says.
                assert_eq!(decide(Phase::Committed, refused, a, over), FinishCommit);
                // Nothing left this host: the destination cannot commit.
                assert_eq!(decide(Exported, refused, a, over), Restore);
            }
            // The destination refused the contexts: it ended the attempt.
            assert_eq!(decide(Phase::RolledBack, true, a, over), Restore);
        }
    }
    for phase in [Sent, Phase::RolledBack] {
        for over in [false, true] {
            assert_eq!(decide(phase, false, Some(Committed), over), PeerCommitted);
            assert_eq!(decide(phase, false, Some(RolledBack), over), Restore);
            // It cannot vouch: never restore (it may have committed).
            assert_eq!(decide(phase, false, Some(Unknown), over), Unresolved);
        }
        assert_eq!(decide(phase, false, None, false), Ask);
        assert_eq!(decide(phase, false, None, true), Unresolved);
    }
}

#[test]
fn the_rule_never_lets_both_ends_serve() {
    // A model of the destination: it commits only after a successful CTDR
    // (which needs the contexts, sent only in phase >= Sent) on a Success
    // (sent only in phase Committed) or at its timeout; an answer reports
    // what it did, the query (a Failure) rolls back an attempt under way.
    use PeerAnswer::*;
    #[derive(Clone, Copy, Debug)]
    enum Dst {
        NeverGotContexts,
        Refused,
        AwaitingComplete,
        CommittedAtTimeout,
        CommittedOnSuccess,
        Forgot { committed: bool },
        Unreachable { committed: bool },
    }
    let dsts = [
        Dst::NeverGotContexts,
        Dst::Refused,
        Dst::AwaitingComplete,
        Dst::CommittedAtTimeout,
        Dst::CommittedOnSuccess,
        Dst::Forgot { committed: false },
        Dst::Forgot { committed: true },
        Dst::Unreachable { committed: false },
        Dst::Unreachable { committed: true },
    ];
    for phase in [
        Phase::Exported,
        Phase::Sent,
        Phase::Committed,
        Phase::RolledBack,
    ] {
        for refused in [false, true] {
            for dst in dsts {
                // Which destination states are possible in this phase.
                let possible = match (phase, dst) {
                    (Phase::Exported, d) => matches!(
                        d,
                        Dst::NeverGotContexts
                            | Dst::Forgot { committed: false }
                            | Dst::Unreachable { committed: false }
                    ),
                    (Phase::RolledBack, _) if refused => matches!(
                        dst,
                        Dst::Refused
                            | Dst::Forgot { committed: false }
                            | Dst::Unreachable { committed: false }
                    ),
                    (Phase::Committed, _) => !matches!(dst, Dst::NeverGotContexts | Dst::Refused),
                    (_, Dst::CommittedOnSuccess) => false,
                    _ => true,
                };
                if !possible {
                    continue;
                }
                let answer = match dst {
                    Dst::NeverGotContexts | Dst::Refused | Dst::AwaitingComplete => {
                        Some(RolledBack)
                    }
                    Dst::CommittedAtTimeout | Dst::CommittedOnSuccess => Some(Committed),
                    Dst::Forgot { .. } => Some(Unknown),
                    Dst::Unreachable { .. } => None,
                };
                let d = decide(phase, refused, answer, true);
                // After a Failure query the destination serves the UE only
                // if it had committed; an AwaitingComplete one rolled back.
                let dst_serves = match dst {
                    Dst::CommittedAtTimeout | Dst::CommittedOnSuccess => true,
                    Dst::Forgot { committed } | Dst::Unreachable { committed } => committed,
                    // Our Complete(Success) (phase committed) reaches it,
                    // or its timeout commits: it serves.
                    Dst::AwaitingComplete => phase == Phase::Committed,
                    _ => false,
                };
                let src_serves = d == Decision::Restore;
                assert!(
                    !(src_serves && dst_serves),
                    "{phase:?} refused={refused} {dst:?}: {d:?}"
                );
                // And a session the destination does not have is restored
                // whenever that can be known.
                if !dst_serves && answer == Some(RolledBack) && phase != Phase::Committed {
                    assert_eq!(d, Decision::Restore, "{phase:?} {dst:?}");
                }
            }
        }
    }
}

#[test]
fn destination_entries_survive_a_reopen_and_are_never_restored_by_decide() {
    let d = tempfile::tempdir().unwrap();
    let c = cfg(d.path());
    let (j, _) = Journal::open(c.clone()).unwrap();
    let mut r = record(7);
    r.peer = "enbc1".into();
    r.services.clear();
    let mut h = j.create(&r, Phase::Imported).unwrap();
    assert!(h.phase().is_incoming());
    drop(j);
    let (_, scan) = Journal::open(c.clone()).unwrap();
    assert_eq!(scan.entries.len(), 1);
    assert_eq!(scan.entries[0].0.phase, Phase::Imported);
    assert_eq!(scan.entries[0].0.record, r);
    drop(scan);
    h.set_phase(Phase::Resuming, false).unwrap();
    drop(h);
    let (_, scan) = Journal::open(c).unwrap();
    assert_eq!(scan.entries[0].0.phase, Phase::Resuming);
    assert_eq!(Phase::Resuming.label(), "resuming");
    // A source's rule never restores a destination's entry.
    for phase in [Phase::Imported, Phase::Resuming] {
        for answer in [
            None,
            Some(PeerAnswer::RolledBack),
            Some(PeerAnswer::Unknown),
        ] {
            for over in [false, true] {
                assert_ne!(decide(phase, false, answer, over), Decision::Restore);
            }
        }
    }
    for phase in [
        Phase::Exported,
        Phase::Sent,
        Phase::Committed,
        Phase::RolledBack,
    ] {
        assert!(!phase.is_incoming());
    }
}

#[test]
fn the_x2_trigger_flag_round_trips_and_unknown_record_flags_are_refused() {
    for x2 in [false, true] {
        let mut r = record(3);
        r.x2_trigger = x2;
        let file = encode(&r, Phase::Sent, false).unwrap();
        assert_eq!(file[9], u8::from(x2));
        let e = decode(Path::new("ho-x-1.jrnl"), file.clone()).unwrap();
        assert_eq!(e.record, r);
        // Another flag: refused by name (the CRC is right, the flag unknown).
        let mut bad = file.to_vec();
        bad[9] |= 0x80;
        let sum = crc32c(&[&bad[..16], &bad[HEADER_LEN..]]).to_be_bytes();
        bad[24..28].copy_from_slice(&sum);
        let err = decode(Path::new("ho-x-1.jrnl"), Bytes::from(bad)).unwrap_err();
        assert!(err.to_string().contains("record flags"), "{err}");
    }
}
