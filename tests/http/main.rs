//! The HTTP contract, tested against the real router on a random port over a fresh
//! SQLite file, with one provider double (and its upstream API) on loopback.
#![cfg(feature = "ssr")]

mod activity;
mod anonymous;
mod apis;
mod backchannel;
mod custody;
mod faults;
mod fuzz;
mod id_tokens;
mod native;
mod operations;
mod provider;
mod proxy;
mod replicas;
mod resources;
mod server_fns;
mod sign_in;
mod sockets;
mod step_up;
mod support;
