//! A host for CLI-level tests: the fake LVM, policy files and a catalog in a temporary
//! directory, and `lvsnap` run in-process with a fixed clock.

use chrono::{DateTime, Utc};
use clap::Parser;
use lvsnap::catalog::{Catalog, State};
use lvsnap::cli::{execute, Cli};
use lvsnap::lvm::fake::FakeLvm;

pub const GIB: u64 = 1 << 30;

/// One directory of stand-in programs for every host test (`tool-path`): the search path is
/// process-wide, so all tests name the same one. It holds `restic` (tests/fixtures/restic);
/// every other program comes from the system.
pub fn fake_tools() -> &'static std::path::Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/restic");
        for f in ["backup.json", "ls.json"] {
            std::fs::copy(format!("{fixtures}/{f}"), d.path().join(f)).unwrap();
        }
        std::fs::copy(format!("{fixtures}/fake-restic"), d.path().join("restic")).unwrap();
        std::fs::set_permissions(
            d.path().join("restic"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        d
    })
    .path()
}

/// What one lvsnap command did: exit status, standard output, error messages.
#[derive(Debug)]
pub struct Ran {
    pub code: i32,
    pub out: String,
    pub err: String,
}

pub struct Host {
    pub dir: tempfile::TempDir,
    pub lvm: FakeLvm,
}

impl Host {
    /// `policies` (TOML) after a `[settings]` table that keeps everything in the directory.
    pub fn new(lvm: FakeLvm, policies: &str) -> Host {
        let h = Host {
            dir: tempfile::tempdir().unwrap(),
            lvm,
        };
        h.write_config(policies);
        h
    }

    /// vg0 (8 GiB) with a thick `home` (1 GiB) and a thin `data` (4 GiB) in `pool` (2 GiB),
    /// and `policies`.
    pub fn standard(policies: &str) -> Host {
        let lvm = FakeLvm::new();
        lvm.add_vg("vg0", 8 * GIB)
            .add_lv("vg0", "home", GIB)
            .add_thin_pool("vg0", "pool", 2 * GIB)
            .add_thin_lv("vg0", "pool", "data", 4 * GIB);
        Host::new(lvm, policies)
    }

    /// Replaces the policy file: the `[settings]` table, then `policies`.
    pub fn write_config(&self, policies: &str) {
        let d = self.dir.path().display();
        let tools = fake_tools().display();
        let settings = format!(
            "[settings]\ncatalog = \"{d}/catalog.db\"\nruntime-dir = \"{d}/run\"\ntimezone = \"UTC\"\nlock-timeout = \"1s\"\ntool-path = [\"{tools}\"]\n\n"
        );
        std::fs::write(self.dir.path().join("lvsnap.toml"), settings + policies).unwrap();
    }

    /// Where this host keeps things (`{dir}` in policies written after creation).
    pub fn path(&self) -> String {
        self.dir.path().display().to_string()
    }

    /// Appends TOML to the policy file.
    pub fn add_policies(&self, text: &str) {
        let path = self.dir.path().join("lvsnap.toml");
        let old = std::fs::read_to_string(&path).unwrap();
        std::fs::write(path, old + text).unwrap();
    }

    /// Runs lvsnap with the clock at `now`: exit status and standard output.
    #[track_caller]
    pub fn lvsnap(&self, args: &[&str], now: &str) -> (i32, String) {
        let r = self.run(args, now);
        (r.code, r.out)
    }

    /// [`Host::lvsnap`], with the error messages too.
    #[track_caller]
    pub fn run(&self, args: &[&str], now: &str) -> Ran {
        let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
        self.run_os(&args, now)
    }

    /// [`Host::lvsnap`] with arguments that need not be UTF-8 (file names as bytes).
    #[track_caller]
    pub fn lvsnap_os(&self, args: &[&std::ffi::OsStr], now: &str) -> (i32, String) {
        let r = self.run_os(args, now);
        (r.code, r.out)
    }

    #[track_caller]
    fn run_os(&self, args: &[&std::ffi::OsStr], now: &str) -> Ran {
        let now: DateTime<Utc> = now.parse().unwrap();
        let config = self.dir.path().join("lvsnap.toml");
        let mut argv: Vec<std::ffi::OsString> =
            vec!["lvsnap".into(), "--config".into(), config.into()];
        argv.extend(args.iter().map(|a| a.to_os_string()));
        let cli = Cli::try_parse_from(argv).expect("valid arguments");
        self.lvm.set_clock(now);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = execute(&cli, &self.lvm, now, &mut out, &mut err);
        Ran {
            code,
            out: String::from_utf8(out).unwrap(),
            err: String::from_utf8(err).unwrap(),
        }
    }

    /// The JSON a command printed (it must succeed, or be held back: exit 3).
    #[track_caller]
    pub fn json(&self, args: &[&str], now: &str) -> serde_json::Value {
        let r = self.run(args, now);
        assert!(r.code == 0 || r.code == 3, "{r:?}");
        serde_json::from_str(&r.out).unwrap_or_else(|e| panic!("{e}: {r:?}"))
    }

    /// The names of lvsnap's snapshots in vg0, as LVM has them.
    pub fn snapshot_names(&self) -> Vec<String> {
        self.lvm
            .names("vg0")
            .into_iter()
            .filter(|n| n.contains("-lvsnap-"))
            .collect()
    }

    pub fn catalog(&self) -> Catalog {
        Catalog::open(&self.dir.path().join("catalog.db")).unwrap()
    }

    pub fn state_of(&self, name: &str) -> State {
        self.catalog()
            .all_snapshots()
            .unwrap()
            .into_iter()
            .find(|s| s.name == name)
            .unwrap()
            .state
    }
}
