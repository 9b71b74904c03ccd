//! The one integration-test binary (GUIDE §7): every module starts what it needs itself.
//! External services come from `scripts/test`: `AWS_ENDPOINT_URL` (moto_server) and `REDIS_URL`.

mod approvals;
mod automation;
mod break_glass;
mod browser;
mod cache;
mod config;
mod cost;
mod credentials;
mod demo;
mod events;
mod expiry;
mod frontdoor;
mod fuzz;
mod identity;
mod import;
mod integrity;
mod notify;
mod ops;
mod pages;
mod refresh;
mod replicas;
mod requests;
mod resource_changes;
mod resources;
mod rightsize;
mod selfservice;
mod server;
mod services;
mod store;
mod support;
mod sync;
