//! The JSON Schema of the config, generated from the types of `netvm_api::config` (schemars
//! derive), so it cannot drift from what the parser accepts. The shipped copy is
//! `schema/netvm-config.schema.json`; a test checks it equals [`generate`]'s output.

/// Where the shipped schema lives, relative to the workspace root.
pub const SHIPPED_PATH: &str = "schema/netvm-config.schema.json";

/// The schema as pretty-printed JSON with a trailing newline.
pub fn generate() -> String {
    let mut schema = schemars::schema_for!(netvm_api::config::Config);
    schema.insert("title".into(), "netvm configuration".into());
    let mut s = serde_json::to_string_pretty(&schema).unwrap_or_default();
    s.push('\n');
    s
}
