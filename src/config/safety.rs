//! Configurations that must not serve: each would let a stranger act as an administrator.
//! `iamdesk serve` and `check-config` stop on them (exit 2) with the keys to set. Demo mode (no
//! sign-in method: everybody is the demo administrator) stays the zero-config default of a bare
//! `cargo run`, which is `environment: dev` on the sandbox cloud with no accounts.

use super::{AwsMode, Config};

const SIGN_IN_KEYS: &str = "set auth.get_user_by_aws_alb_auth: true (with auth.alb.arns) or \
                            auth.get_user_by_header: true (with auth.trusted_proxies)";

/// Every reason this configuration must not serve; empty when it may.
pub fn unsafe_settings(config: &Config) -> Vec<String> {
    let mut problems = vec![];
    let demo = !config.sign_in_configured();
    if demo && !config.is_dev() {
        problems.push(format!(
            "environment is prod but no sign-in method is configured, so every visitor would be \
             the demo administrator: {SIGN_IN_KEYS}; or set environment: dev for a local trial"
        ));
    }
    if demo && config.aws.mode == AwsMode::Aws {
        problems.push(format!(
            "aws.mode is aws (real AWS accounts) but no sign-in method is configured, so every \
             visitor could approve changes in AWS: {SIGN_IN_KEYS}; or set aws.mode: sandbox for \
             the demo"
        ));
    }
    if demo && !config.account_ids_to_name.is_empty() && config.aws.mode != AwsMode::Aws {
        problems.push(format!(
            "account_ids_to_name lists real accounts while demo mode (no sign-in method) is on: \
             {SIGN_IN_KEYS}; or remove account_ids_to_name for the demo"
        ));
    }
    if config.auth.get_user_by_header && !config.is_dev() && config.auth.trusted_proxies.is_empty()
    {
        problems.push(
            "auth.get_user_by_header is on in prod without auth.trusted_proxies: set \
             auth.trusted_proxies to the addresses (CIDRs) of the proxy that sets and strips \
             the user header, so that nobody else can claim an identity with it"
                .to_string(),
        );
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Environment;

    fn demo() -> Config {
        Config {
            environment: Environment::Dev,
            ..Config::default()
        }
    }

    #[test]
    fn the_bare_demo_may_serve() {
        assert!(unsafe_settings(&demo()).is_empty());
    }

    #[test]
    fn prod_or_aws_without_sign_in_is_refused_naming_the_keys() {
        let prod = Config::default();
        let p = unsafe_settings(&prod);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("auth.get_user_by_aws_alb_auth"), "{p:?}");

        let mut aws = demo();
        aws.aws.mode = AwsMode::Aws;
        let p = unsafe_settings(&aws);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("aws.mode"), "{p:?}");

        let mut accounts = demo();
        accounts
            .account_ids_to_name
            .insert("123456789012".into(), "prod".into());
        let p = unsafe_settings(&accounts);
        assert!(p[0].contains("account_ids_to_name"), "{p:?}");

        let mut alb = prod.clone();
        alb.auth.get_user_by_aws_alb_auth = true;
        alb.aws.mode = AwsMode::Aws;
        assert!(unsafe_settings(&alb).is_empty());
    }

    #[test]
    fn header_sign_in_in_prod_needs_trusted_proxies() {
        let mut c = Config::default();
        c.auth.get_user_by_header = true;
        let p = unsafe_settings(&c);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("auth.trusted_proxies"), "{p:?}");
        c.auth.trusted_proxies = vec!["10.0.0.0/8".parse().expect("cidr")];
        assert!(unsafe_settings(&c).is_empty());
        let mut dev = demo();
        dev.auth.get_user_by_header = true;
        assert!(unsafe_settings(&dev).is_empty(), "dev: loopback only");
    }

    #[test]
    fn proxies_default_to_loopback() {
        let mut c = demo();
        let ip = |s: &str| s.parse::<std::net::IpAddr>().expect("ip");
        assert!(c.trusts_proxy(ip("127.0.0.1")));
        assert!(c.trusts_proxy(ip("::1")));
        assert!(c.trusts_proxy(ip("::ffff:127.0.0.1")));
        assert!(!c.trusts_proxy(ip("10.0.0.1")));
        c.auth.trusted_proxies = vec!["10.0.0.0/8".parse().expect("cidr")];
        assert!(c.trusts_proxy(ip("10.9.8.7")));
        assert!(
            !c.trusts_proxy(ip("127.0.0.1")),
            "an explicit list replaces loopback"
        );
        assert!("10.1.2.3".parse::<crate::config::Cidr>().is_ok());
        assert!("nope".parse::<crate::config::Cidr>().is_err());
    }
}
