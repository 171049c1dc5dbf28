//! Pages: components only; data comes from server functions.

pub mod account;
pub mod api_demo;
pub mod home;
pub mod not_found;
mod notices;
pub mod sign_in;
