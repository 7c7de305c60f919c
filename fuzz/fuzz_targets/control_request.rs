//! Control-socket request parsing over arbitrary bytes: `Request::parse` must return a request
//! or a typed error, never panic, and a parsed request must survive its own round trip (what
//! the manager sends is what the core reads). `scripts/fuzz.sh` seeds the corpus with one line
//! of every command.

use netvm_api::protocol::Request;

fn main() {
    let target = |data: &[u8]| {
        if let Ok(s) = std::str::from_utf8(data) {
            if let Ok(req) = Request::parse(s) {
                let line = req.to_line();
                let again = Request::parse(&line).expect("a serialized request parses");
                assert_eq!(again.to_line(), line);
            }
        }
    };
    let (iters, secs, corpus, seed) = netvm_fuzz::args();
    let n = netvm_fuzz::drive(target, corpus.as_deref(), iters, secs, seed);
    println!("control_request: {n} inputs, no failure");
}
