#!/bin/bash
# build-deb.sh — the Debian package, from this repository, in one command:
#   packaging/build-deb.sh            → target/packages/lvsnap_VERSION-1_ARCH.deb (path printed)
#   packaging/build-deb.sh --revision 2   another Debian revision (an upgrade test builds one)
# Builds the release binary, generates the man page (section 8) and the bash, zsh and fish
# completions from it, and packs them with cargo-deb, which it installs (a pinned version,
# into ~/.cargo/bin) when missing. Needs a Rust toolchain; the package itself does not.
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO_DEB_VERSION=3.8.0
REVISION=1
[ "${1:-}" = --revision ] && REVISION=$2

if ! command -v cargo > /dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! cargo deb --version 2> /dev/null | grep -qx "cargo-deb $CARGO_DEB_VERSION"; then
  echo "build-deb: installing cargo-deb $CARGO_DEB_VERSION" >&2
  cargo install --quiet --locked cargo-deb --version "$CARGO_DEB_VERSION" >&2
fi
cargo build --locked --release --bin lvsnap >&2
mkdir -p target/deb-assets
bin=target/release/lvsnap
"$bin" man > target/deb-assets/lvsnap.8
"$bin" completions bash > target/deb-assets/lvsnap.bash
"$bin" completions zsh > target/deb-assets/_lvsnap
"$bin" completions fish > target/deb-assets/lvsnap.fish
# cargo-deb clears target/debian/ as it builds: the packages are kept in target/packages/.
out=target/debian/build-$REVISION
mkdir -p target/packages
rm -rf "$out" target/packages/lvsnap_*-"$REVISION"_*.deb
cargo deb --no-build --deb-revision "$REVISION" --output "$out/" >&2
deb=$(ls "$out"/lvsnap_*-"$REVISION"_*.deb)
mv "$deb" target/packages/
rm -rf "$out"
echo "target/packages/$(basename "$deb")"
