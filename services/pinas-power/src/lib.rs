//! PiNAS power role (`pinas power`): TP-Link Tapo P110 plugs polled on the LAN over
//! KLAP, their power and energy history, what the NAS costs and how long it runs.

pub mod fake;
pub mod fixtures;
pub mod klap;
pub mod sampler;
