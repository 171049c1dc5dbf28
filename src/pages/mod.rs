//! Pages: components only; data comes from server functions.

pub mod home;
pub mod not_found;
