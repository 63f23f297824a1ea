//! A host for CLI-level tests: the fake LVM, policy files and a catalog in a temporary
//! directory, and `lvsnap` run in-process with a fixed clock.

#![allow(dead_code)]

use chrono::{DateTime, Utc};
use clap::Parser;
use lvsnap::catalog::{Catalog, State};
use lvsnap::cli::{execute, Cli};
use lvsnap::lvm::fake::FakeLvm;

pub const GIB: u64 = 1 << 30;

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
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let settings = format!(
            "[settings]\ncatalog = \"{d}/catalog.db\"\nruntime-dir = \"{d}/run\"\ntimezone = \"UTC\"\nlock-timeout = \"1s\"\n\n"
        );
        std::fs::write(dir.path().join("lvsnap.toml"), settings + policies).unwrap();
        Host { dir, lvm }
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
