//! Placeholder module filled with the hostile-NF behaviours (see `src/bin/hostile-nf.rs`).
