//! Installs the pinned reference server into the test cache (what the harness would do on first
//! use), so a fresh machine pays the npm install once, before the tests start.

fn main() {
    match ds_tests::refserver::ensure_installed() {
        Ok(dir) => println!("reference server ready in {}", dir.display()),
        Err(e) => {
            eprintln!("cannot install the reference server: {e}");
            std::process::exit(1);
        }
    }
}
