//! The real-LVM suite: boots one qemu VM (tests/vm/run-vm.sh), runs every scenario in
//! tests/vm/scenarios/ against a fresh volume group with the freshly built lvsnap, and reports
//! each scenario as a test. Scenarios in tests/vm/scenarios-newer-kernel/ need a newer kernel
//! than the Debian release's (tests/vm/newer-kernel.sh): they run in a second boot, of Debian's
//! backports kernel. Scenarios in tests/vm/scenarios-systemd/ run in a third boot, of a Debian
//! system with systemd as init (tests/vm/provision-system.sh), with lvsnap installed from its
//! Debian package (LVSNAP_VM_DEB, LVSNAP_VM_DEB_UPGRADE). A scenario that fails, or that never reported because the guest
//! panicked or hung, fails here with the tail of its log and of the guest's console.
//!
//! The harness tests itself too: a deliberately failing scenario must be reported as failed,
//! a hung guest must time out, and a kernel panic must be caught.
//!
//! Built only with `--features vm-tests` (tests/run.sh does that), so that a plain `cargo test`
//! never counts a skipped VM suite as passed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use libtest_mimic::{Arguments, Failed, Trial};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const DEBUG_LVSNAP: &str = env!("CARGO_BIN_EXE_lvsnap");

/// The binary under test: `LVSNAP_VM_BINARY` (tests/run.sh sets the release build, which is what
/// administrators run and starts twice as fast under emulation), else this build's.
fn lvsnap_binary() -> String {
    std::env::var("LVSNAP_VM_BINARY").unwrap_or_else(|_| DEBUG_LVSNAP.to_owned())
}
const SELFTEST: &str = "fails-on-purpose";

fn tail(path: &Path, lines: usize) -> String {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| format!("({}: {e})", path.display()));
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn run_vm(args: &[&str], console: &Path) -> (Option<i32>, f64) {
    run_vm_with(args, console, &[])
}

fn run_vm_with(args: &[&str], console: &Path, env: &[(String, String)]) -> (Option<i32>, f64) {
    let start = Instant::now();
    let status = Command::new(Path::new(ROOT).join("tests/vm/run-vm.sh"))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(["--share", ROOT, "--console"])
        .arg(console)
        .args(shares_for_binary())
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("tests/vm/run-vm.sh starts");
    (status.code(), start.elapsed().as_secs_f64())
}

/// The binary must be visible in the guest; it is under ROOT unless CARGO_TARGET_DIR moved it.
fn shares_for_binary() -> Vec<String> {
    let binary = lvsnap_binary();
    let dir = Path::new(&binary).parent().expect("binary has a directory");
    if dir.starts_with(ROOT) {
        vec![]
    } else {
        vec!["--share".to_owned(), dir.display().to_string()]
    }
}

fn scenarios_in(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(Path::new(ROOT).join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sh"))
        .collect();
    files.sort();
    files
}

fn scenarios() -> Vec<PathBuf> {
    let mut files = scenarios_in("tests/vm/scenarios");
    files.push(Path::new(ROOT).join(format!("tests/vm/selftest/{SELFTEST}.sh")));
    files
}

/// The environment that boots the backports kernel (see tests/vm/newer-kernel.sh).
fn newer_kernel_env() -> Result<Vec<(String, String)>, String> {
    let out = Command::new(Path::new(ROOT).join("tests/vm/newer-kernel.sh"))
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("tests/vm/newer-kernel.sh: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "tests/vm/newer-kernel.sh exited {:?}",
            out.status.code()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect())
}

/// Boots one VM for `chosen` (with `env`), logging into `results`; the VM's exit status.
fn boot(chosen: &[&PathBuf], results: &Path, tag: &str, env: &[(String, String)]) -> Option<i32> {
    let console = results.join(format!("console{tag}.log"));
    let runner = Path::new(ROOT).join("tests/vm/guest/run-scenarios.sh");
    // A guard against a guest that hangs as a whole (each scenario has its own 600 s limit in
    // the guest): the first boot's ~31 scenarios take 25-30 min under emulation, and the
    // limit leaves room for a slow machine while keeping a hung boot inside CI's 90 minutes.
    let mut vm_args: Vec<String> = vec![
        "--timeout".into(),
        "2700".into(),
        "--".into(),
        "bash".into(),
    ];
    vm_args.push(runner.display().to_string());
    vm_args.push(results.display().to_string());
    vm_args.push(lvsnap_binary());
    vm_args.extend(chosen.iter().map(|f| f.display().to_string()));
    let refs: Vec<&str> = vm_args.iter().map(String::as_str).collect();
    let (code, secs) = run_vm_with(&refs, &console, env);
    eprintln!(
        "vm{tag}: {} scenario(s) in one boot, {secs:.1} s wall, exit {code:?}; logs in {}",
        chosen.len(),
        results.display()
    );
    for f in chosen {
        let name = name_of(f);
        let ms = std::fs::read_to_string(results.join(format!("{name}.ms"))).unwrap_or_default();
        eprintln!("vm{tag}:   {name:<40} {:>8} ms", ms.trim());
    }
    code
}

/// The package under test and the same with a later Debian revision (tests/run.sh builds both
/// with packaging/build-deb.sh), and the systemd guest's root image.
fn system_guest() -> Result<(String, String, String), String> {
    let deb = |var: &str| {
        std::env::var(var).map_err(|_| {
            format!("{var} is not set: the systemd scenarios install the package; tests/run.sh builds it with packaging/build-deb.sh")
        })
    };
    let (deb, upgrade) = (deb("LVSNAP_VM_DEB")?, deb("LVSNAP_VM_DEB_UPGRADE")?);
    let out = Command::new(Path::new(ROOT).join("tests/vm/provision-system.sh"))
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("tests/vm/provision-system.sh: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "tests/vm/provision-system.sh exited {:?}",
            out.status.code()
        ));
    }
    let image = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    Ok((image, deb, upgrade))
}

/// Boots the systemd guest for `chosen`: the package installed afresh before each scenario.
fn boot_system(chosen: &[&PathBuf], results: &Path, image: &str, debs: [&str; 2]) -> Option<i32> {
    let console = results.join("console-systemd.log");
    let runner = Path::new(ROOT).join("tests/vm/guest/run-system-scenarios.sh");
    let mut vm_args: Vec<String> = ["--root", image, "--timeout", "1800", "--", "bash"]
        .map(String::from)
        .to_vec();
    vm_args.push(runner.display().to_string());
    vm_args.push(results.display().to_string());
    vm_args.extend(debs.iter().map(|d| d.to_string()));
    vm_args.extend(chosen.iter().map(|f| f.display().to_string()));
    let refs: Vec<&str> = vm_args.iter().map(String::as_str).collect();
    let (code, secs) = run_vm_with(&refs, &console, &[]);
    eprintln!(
        "vm-systemd: {} scenario(s) in one boot, {secs:.1} s wall, exit {code:?}",
        chosen.len()
    );
    for f in chosen {
        let name = name_of(f);
        let ms = std::fs::read_to_string(results.join(format!("{name}.ms"))).unwrap_or_default();
        eprintln!("vm-systemd:   {name:<40} {:>8} ms", ms.trim());
    }
    code
}

fn name_of(p: &Path) -> String {
    p.file_stem().unwrap().to_string_lossy().into_owned()
}

fn selected(args: &Arguments, name: &str) -> bool {
    let matches = |f: &str| {
        if args.exact {
            name == f
        } else {
            name.contains(f)
        }
    };
    args.filter.as_deref().is_none_or(matches) && !args.skip.iter().any(|s| matches(s))
}

fn main() {
    let args = Arguments::from_args();
    let files = scenarios();
    let newer = scenarios_in("tests/vm/scenarios-newer-kernel");
    let mut trials: Vec<Trial> = Vec::new();
    let names: Vec<String> = files.iter().map(|f| name_of(f)).collect();
    let newer_names: Vec<String> = newer.iter().map(|f| name_of(f)).collect();
    let system = scenarios_in("tests/vm/scenarios-systemd");
    let system_names: Vec<String> = system.iter().map(|f| name_of(f)).collect();
    let chosen_system: Vec<&PathBuf> = system
        .iter()
        .filter(|f| selected(&args, &name_of(f)))
        .collect();
    let chosen: Vec<&PathBuf> = files
        .iter()
        .filter(|f| selected(&args, &name_of(f)))
        .collect();
    let chosen_newer: Vec<&PathBuf> = newer
        .iter()
        .filter(|f| selected(&args, &name_of(f)))
        .collect();

    let anything = !chosen.is_empty() || !chosen_newer.is_empty() || !chosen_system.is_empty();
    if !args.list && anything {
        let results = Path::new(ROOT).join(format!("target/lvm-vm/results/{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&results);
        std::fs::create_dir_all(&results).expect("results directory");
        if !chosen.is_empty() {
            let code = boot(&chosen, &results, "", &[]);
            for name in &names {
                trials.push(scenario_trial(name, &results, code, "console.log"));
            }
        }
        if !chosen_newer.is_empty() {
            match newer_kernel_env() {
                Ok(env) => {
                    let code = boot(&chosen_newer, &results, "-newer-kernel", &env);
                    for name in &newer_names {
                        trials.push(scenario_trial(
                            name,
                            &results,
                            code,
                            "console-newer-kernel.log",
                        ));
                    }
                }
                Err(e) => {
                    for name in &newer_names {
                        let e = e.clone();
                        trials.push(Trial::test(name.clone(), move || {
                            Err(Failed::from(format!(
                                "the newer kernel could not be provisioned: {e}"
                            )))
                        }));
                    }
                }
            }
        }
        if !chosen_system.is_empty() {
            match system_guest() {
                Ok((image, deb, upgrade)) => {
                    let code = boot_system(&chosen_system, &results, &image, [&deb, &upgrade]);
                    for name in &system_names {
                        trials.push(scenario_trial(name, &results, code, "console-systemd.log"));
                    }
                }
                Err(e) => {
                    for name in &system_names {
                        let e = e.clone();
                        trials.push(Trial::test(name.clone(), move || {
                            Err(Failed::from(format!("the systemd guest cannot run: {e}")))
                        }));
                    }
                }
            }
        }
    } else {
        for name in names.iter().chain(&newer_names).chain(&system_names) {
            trials.push(Trial::test(name.clone(), || Ok(())));
        }
    }
    trials.push(Trial::test(
        "harness_catches_a_hung_guest",
        harness_catches_a_hung_guest,
    ));
    trials.push(Trial::test(
        "harness_catches_a_kernel_panic",
        harness_catches_a_kernel_panic,
    ));
    libtest_mimic::run(&args, trials).exit();
}

fn scenario_trial(name: &str, results: &Path, vm_code: Option<i32>, console: &str) -> Trial {
    let status_file = results.join(format!("{name}.status"));
    let log = results.join(format!("{name}.log"));
    let console = results.join(console);
    let is_selftest = name == SELFTEST;
    Trial::test(name.to_owned(), move || {
        let status = std::fs::read_to_string(&status_file)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok());
        match (status, is_selftest) {
            (Some(0), false) => Ok(()),
            (Some(code), false) => Err(Failed::from(format!(
                "scenario exited {code}; its log ends:\n{}\n",
                tail(&log, 40)
            ))),
            // The harness's own check: the deliberate failure must come back as a failure, with
            // the assertion's message in its log.
            (Some(code), true) if code != 0 && tail(&log, 5).contains("FAIL: deliberate failure") => Ok(()),
            (Some(code), true) => Err(Failed::from(format!("the deliberately failing scenario was reported as exit {code}"))),
            (None, _) => Err(Failed::from(format!(
                "scenario never reported (VM exit {vm_code:?}: 124 is a timeout, 125 a crash or panic); the guest console ends:\n{}\n",
                tail(&console, 40)
            ))),
        }
    })
}

fn harness_catches_a_hung_guest() -> Result<(), Failed> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let console = dir.path().join("console.log");
    let (code, _) = run_vm(
        &["--disks", "0", "--timeout", "20", "--", "sleep", "600"],
        &console,
    );
    if code != Some(124) {
        return Err(format!("a hung guest gave exit {code:?}, not 124 (timeout)").into());
    }
    Ok(())
}

fn harness_catches_a_kernel_panic() -> Result<(), Failed> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let console = dir.path().join("console.log");
    let (code, _) = run_vm(
        &[
            "--disks",
            "0",
            "--",
            "sh",
            "-c",
            "echo c > /proc/sysrq-trigger; sleep 60",
        ],
        &console,
    );
    let log = tail(&console, 200);
    if code != Some(125) || !log.contains("Kernel panic") {
        return Err(format!("a kernel panic gave exit {code:?}; console:\n{log}").into());
    }
    Ok(())
}
