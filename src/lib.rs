//! iamdesk: self-service AWS IAM portal, successor of Netflix ConsoleMe.
//!
//! See `GUIDE.md` §1 for the architecture. `main.rs` only parses the command line and calls
//! [`cli::run`].

pub mod app;
pub mod auth;
pub mod aws;
pub mod cache;
pub mod cli;
pub mod client;
pub mod cloud;
pub mod config;
pub mod credentials;
pub mod error;
pub mod events;
pub mod iam_actions;
pub mod import;
pub mod migrate;
pub mod notify;
pub mod ratelimit;
pub mod requests;
pub mod resources;
pub mod rightsize;
pub mod selfservice;
pub mod store;
pub mod telemetry;
pub mod web;

pub use error::AppError;
