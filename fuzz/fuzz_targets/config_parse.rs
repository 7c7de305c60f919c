//! Config parsing and validation over arbitrary bytes: `Config::from_json` then `validate`
//! must return `Ok` or a typed error, never panic. Random inputs are mostly rejected by the
//! JSON parser, so the corpus (valid configs) matters: `scripts/fuzz.sh` seeds it from
//! `examples/`.

fn main() {
    let target = |data: &[u8]| {
        if let Ok(s) = std::str::from_utf8(data) {
            if let Ok(cfg) = netvm_api::config::Config::from_json(s) {
                let _ = cfg.validate();
            }
        }
    };
    let (iters, secs, corpus, seed) = netvm_fuzz::args();
    let n = netvm_fuzz::drive(target, corpus.as_deref(), iters, secs, seed);
    println!("config_parse: {n} inputs, no failure");
}
