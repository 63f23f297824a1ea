//! The systemd units in systemd/ pass `systemd-analyze verify`, with the built binary standing in
//! for /usr/sbin/lvsnap, and keep the hardening and timer settings the README promises.

use std::path::Path;
use std::process::Command;

fn unit(name: &str) -> String {
    std::fs::read_to_string(Path::new("systemd").join(name)).unwrap()
}

#[test]
fn units_pass_systemd_analyze_verify() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["lvsnap.service", "lvsnap-daemon.service", "lvsnap.timer"] {
        let text = unit(name).replace("/usr/sbin/lvsnap", env!("CARGO_BIN_EXE_lvsnap"));
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    // --man=no: the man page is not installed on the machine that runs the tests. The timer is
    // verified with the service it starts; the daemon's unit on its own.
    for units in [
        &["lvsnap.service", "lvsnap.timer"][..],
        &["lvsnap-daemon.service"][..],
    ] {
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .args(units.iter().map(|u| dir.path().join(u)))
            .output()
            .expect("systemd-analyze runs (tests/run.sh installs systemd when it is missing)");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.trim().is_empty(),
            "systemd-analyze verify {units:?}: {stderr}"
        );
    }
}

#[test]
fn service_is_hardened_and_timer_catches_up() {
    let service = unit("lvsnap.service");
    for line in [
        "Type=oneshot",
        "ExecStart=/usr/sbin/lvsnap run",
        "ProtectSystem=strict",
        "StateDirectory=lvsnap",
        "RuntimeDirectory=lvsnap",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=CAP_SYS_ADMIN",
        "StateDirectoryMode=0700",
        "RuntimeDirectoryMode=0700",
        "RestrictAddressFamilies=AF_UNIX AF_NETLINK AF_INET AF_INET6",
    ] {
        assert!(
            service.lines().any(|l| l.starts_with(line)),
            "lvsnap.service lacks {line}"
        );
    }
    let daemon = unit("lvsnap-daemon.service");
    for line in [
        "ExecStart=/usr/sbin/lvsnap daemon",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
    ] {
        assert!(
            daemon.lines().any(|l| l.starts_with(line)),
            "lvsnap-daemon.service lacks {line}"
        );
    }
    let timer = unit("lvsnap.timer");
    for line in [
        "OnCalendar=*:0/15",
        "Persistent=true",
        "RandomizedDelaySec=60",
        "WantedBy=timers.target",
    ] {
        assert!(
            timer.lines().any(|l| l == line),
            "lvsnap.timer lacks {line}"
        );
    }
}
