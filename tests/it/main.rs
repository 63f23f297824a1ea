//! The host integration tests, one binary: commands through the CLI layer against the fake
//! LVM ([`common::Host`]), the binary itself (`cli`), policy files, the confined copier, the
//! daemon, retention properties and the systemd units. What real LVM, mounts and engines do is
//! tested in the VM (`tests/vm.rs`, `tests/vm/scenarios/`).

mod backup;
mod cli;
mod common;
mod config;
mod confined;
mod cycle;
mod daemon;
mod layout;
mod pressure;
mod restic;
mod restore;
mod retention;
mod sets;
mod setup;
mod systemd;
