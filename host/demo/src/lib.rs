//! Demo data for the insights engine: three sources with a known duplicate
//! structure and the truth ([`generate`]), and pairwise scoring of a
//! unification against that truth ([`score`]).
//!
//! Layering rule: depends on `triggerfish-data` only; nothing below it
//! depends on this crate.

pub mod generate;
pub mod score;
