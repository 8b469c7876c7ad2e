//! Bringing users, keys and usage over from other systems into keytop, through the service.

pub mod aether;
pub mod float_money;
