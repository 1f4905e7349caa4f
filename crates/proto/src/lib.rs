//! Raccoon's wire contract, package `raystack.raccoon.v1beta1`: the types prost generates from the
//! repository's `proto/raystack/raccoon/v1beta1/raccoon.proto`, once, for the server, the Rust
//! client and the command-line tool. `bytes` fields are [`bytes::Bytes`], so a decoder that is
//! handed a `Bytes` buffer slices it instead of copying.

#![allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic, rustdoc::invalid_html_tags)]

include!(concat!(env!("OUT_DIR"), "/raystack.raccoon.v1beta1.rs"));
