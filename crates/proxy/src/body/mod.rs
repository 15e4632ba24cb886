//! What happens to a snapshot's bytes between the source and the client: strings redacted,
//! whitespace sent while the snapshot is being built, compression with a spill queue behind it.

pub(crate) mod encoding;
pub(crate) mod heartbeat;
pub(crate) mod redaction;
