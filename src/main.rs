fn main() {
    std::process::exit(lvsnap::run(std::env::args_os()));
}
