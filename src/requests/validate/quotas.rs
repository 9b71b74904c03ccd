//! A role as it would stand after the changes seen so far, and the AWS quotas checked on it once
//! every change is simulated.

use std::collections::BTreeMap;

use super::names::{ROLE_INLINE_POLICY_CHARS, doc_chars};
use super::{Limits, Problem};
use crate::resources::model::Principal;

/// One role during the simulation of a request.
pub(super) struct Target {
    pub account: String,
    pub label: String,
    /// Inline policy name → size in characters.
    pub inline: BTreeMap<String, usize>,
    pub managed: Vec<String>,
    pub boundary: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// Created by an earlier change of this request.
    pub created: bool,
    pub before_inline: usize,
    pub before_managed: usize,
    pub before_tags: usize,
    /// Field of the last change touching each quota; quotas are checked only when touched.
    pub inline_touch: Option<String>,
    pub managed_touch: Option<String>,
    pub tags_touch: Option<String>,
}

impl Target {
    pub fn from_principal(p: &Principal) -> Self {
        let inline: BTreeMap<String, usize> = p
            .inline_policies
            .iter()
            .map(|ip| (ip.name.clone(), doc_chars(&ip.document)))
            .collect();
        let tags: BTreeMap<String, String> = p
            .tags
            .iter()
            .map(|t| (t.key.clone(), t.value.clone()))
            .collect();
        Target {
            account: p.account_id.clone(),
            label: format!("{} `{}`", p.kind.as_str(), p.name),
            before_inline: inline.values().sum(),
            before_managed: p.managed_policies.len(),
            before_tags: tags.len(),
            inline,
            managed: p.managed_policies.iter().map(|m| m.arn.clone()).collect(),
            boundary: p.permissions_boundary.clone(),
            tags,
            created: false,
            inline_touch: None,
            managed_touch: None,
            tags_touch: None,
        }
    }

    /// Quotas after all changes: only growth past a limit is a problem (a change that shrinks
    /// an already over-limit role is fine).
    pub fn quota_problems(&self, limits: &Limits) -> Vec<Problem> {
        let mut found = Vec::new();
        let limit = ROLE_INLINE_POLICY_CHARS;
        let inline: usize = self.inline.values().sum();
        if let Some(f) = &self.inline_touch
            && inline > limit
            && inline > self.before_inline
        {
            found.push(Problem::new(
                f,
                format!(
                    "after this request the inline policies of {} would total {inline} \
                     characters without whitespace; AWS allows {limit} per role. Shorten them \
                     (merge statements) or move permissions into a managed policy",
                    self.label
                ),
            ));
        }
        let max = limits.max_managed_policies;
        if let Some(f) = &self.managed_touch
            && self.managed.len() > max
            && self.managed.len() > self.before_managed
        {
            found.push(Problem::new(
                f,
                format!(
                    "after this request {} would have {} managed policies attached; the limit \
                     is {max}. Detach one in the same request or combine policies",
                    self.label,
                    self.managed.len()
                ),
            ));
        }
        let max = limits.max_tags;
        if let Some(f) = &self.tags_touch
            && self.tags.len() > max
            && self.tags.len() > self.before_tags
        {
            found.push(Problem::new(
                f,
                format!(
                    "after this request {} would have {} tags; the limit is {max}. Delete unused \
                     tags in the same request",
                    self.label,
                    self.tags.len()
                ),
            ));
        }
        found
    }
}

#[cfg(test)]
mod tests {
    #[allow(unused_imports)]
    use super::super::names::*;
    use super::super::test_support::*;
    use super::super::*;
    #[allow(unused_imports)]
    use crate::requests::model::*;
    #[allow(unused_imports)]
    use crate::resources::model::{AttachedPolicy, InlinePolicy, Principal, ResourceKind, Tag};
    #[allow(unused_imports)]
    use serde_json::{Value, json};

    #[test]
    fn inline_policies_of_a_role_sum_to_at_most_10240_after_the_change() {
        let existing = doc_chars(&s3_read());
        let at_limit = identity_doc_of(ROLE_INLINE_POLICY_CHARS - existing);
        ok(run(
            vec![inline_attach("app", "big", at_limit)],
            vec![app()],
        ));
        let over = identity_doc_of(ROLE_INLINE_POLICY_CHARS - existing + 1);
        fails(
            run(vec![inline_attach("app", "big", over.clone())], vec![app()]),
            "changes[0].policy.policy_document",
            "10241 characters",
        );
        // Replacing the existing policy counts the new size only.
        ok(run(
            vec![inline_attach(
                "app",
                "read",
                identity_doc_of(ROLE_INLINE_POLICY_CHARS),
            )],
            vec![app()],
        ));
        fails(
            run(
                vec![inline_attach(
                    "app",
                    "read",
                    identity_doc_of(ROLE_INLINE_POLICY_CHARS + 1),
                )],
                vec![app()],
            ),
            "changes[0].policy.policy_document",
            "10241",
        );
        // Detaching in the same request makes room.
        let detach = json!({"change_type": "inline_policy", "principal": principal_of("app"), "policy_name": "read", "action": "detach"});
        ok(run(
            vec![
                detach,
                inline_attach("app", "big", identity_doc_of(ROLE_INLINE_POLICY_CHARS)),
            ],
            vec![app()],
        ));
        // Two new policies on the same role add up; the last one is named.
        let half = ROLE_INLINE_POLICY_CHARS / 2;
        let p = fails(
            run(
                vec![
                    inline_attach("app", "a", identity_doc_of(half)),
                    inline_attach("app", "b", identity_doc_of(half)),
                ],
                vec![app()],
            ),
            "changes[1].policy.policy_document",
            "AWS allows 10240",
        );
        assert_eq!(p.len(), 1);
        // Whitespace does not count: the document is measured compact.
        let pretty: Value =
            serde_json::from_str(&serde_json::to_string_pretty(&identity_doc_of(300)).unwrap())
                .unwrap();
        assert_eq!(doc_chars(&pretty), 300);
    }

    #[test]
    fn changes_to_users_are_refused_with_a_reason() {
        let mut user = role("bob");
        user.kind = ResourceKind::User;
        user.arn = format!("arn:aws:iam::{ACCT}:user/bob");
        let change = json!({"change_type": "inline_policy", "policy_name": "p", "action": "attach",
            "principal": {"principal_type": "AwsResource", "principal_arn": user.arn},
            "policy": {"policy_document": s3_read()}});
        fails(
            run(vec![change], vec![user]),
            "changes[0].principal.principal_arn",
            "roles only",
        );
    }

    #[test]
    fn a_role_already_over_the_inline_quota_may_shrink() {
        let mut fat = app();
        fat.inline_policies.push(InlinePolicy {
            name: "huge".into(),
            document: identity_doc_of(ROLE_INLINE_POLICY_CHARS),
        });
        ok(run(
            vec![inline_attach("app", "huge", identity_doc_of(5000))],
            vec![fat.clone()],
        ));
        fails(
            run(vec![inline_attach("app", "more", s3_read())], vec![fat]),
            "changes[0].policy.policy_document",
            "would total",
        );
    }

    #[test]
    fn trust_policy_is_at_most_2048_characters() {
        let change = |doc: Value| {
            json!({"change_type": "assume_role_policy", "principal": principal_of("app"),
                                         "policy": {"policy_document": doc}})
        };
        ok(run(
            vec![change(trust_doc_of(TRUST_POLICY_CHARS))],
            vec![app()],
        ));
        fails(
            run(
                vec![change(trust_doc_of(TRUST_POLICY_CHARS + 1))],
                vec![app()],
            ),
            "changes[0].policy.policy_document",
            "2049 characters",
        );
        let create = |doc: Value| {
            json!({"change_type": "create_role", "account_id": ACCT, "role_name": "n",
                                         "policy": {"policy_document": doc}})
        };
        ok(run(vec![create(trust_doc_of(TRUST_POLICY_CHARS))], vec![]));
        fails(
            run(vec![create(trust_doc_of(TRUST_POLICY_CHARS + 1))], vec![]),
            "changes[0].policy.policy_document",
            "AWS allows 2048",
        );
    }

    #[test]
    fn managed_policies_attached_are_at_most_the_limit_after_the_change() {
        let arn = |k: usize| format!("arn:aws:iam::{ACCT}:policy/p{k}");
        let mut full = role("app");
        full.managed_policies = (0..9)
            .map(|k| AttachedPolicy {
                name: format!("p{k}"),
                arn: arn(k),
            })
            .collect();
        ok(run(
            vec![managed("app", &arn(9), "attach")],
            vec![full.clone()],
        ));
        fails(
            run(
                vec![
                    managed("app", &arn(9), "attach"),
                    managed("app", &arn(10), "attach"),
                ],
                vec![full.clone()],
            ),
            "changes[1].arn",
            "11 managed policies",
        );
        ok(run(
            vec![
                managed("app", &arn(0), "detach"),
                managed("app", &arn(9), "attach"),
                managed("app", &arn(10), "attach"),
            ],
            vec![full.clone()],
        ));
        let lim = Limits {
            max_managed_policies: 20,
            ..Limits::default()
        };
        ok(run_with(
            &body_of(vec![
                managed("app", &arn(9), "attach"),
                managed("app", &arn(10), "attach"),
            ]),
            vec![full],
            &lim,
        ));
    }

    #[test]
    fn tags_are_at_most_the_limit_after_the_change() {
        let mut tagged = role("app");
        tagged.tags = (0..49)
            .map(|k| Tag {
                key: format!("k{k}"),
                value: "v".into(),
            })
            .collect();
        ok(run(
            vec![tag("app", "new", "v", "create")],
            vec![tagged.clone()],
        ));
        fails(
            run(
                vec![
                    tag("app", "new", "v", "create"),
                    tag("app", "new2", "v", "create"),
                ],
                vec![tagged.clone()],
            ),
            "changes[1].key",
            "51 tags",
        );
        ok(run(
            vec![
                tag("app", "k0", "", "delete"),
                tag("app", "new", "v", "create"),
                tag("app", "new2", "v", "create"),
            ],
            vec![tagged.clone()],
        ));
        let lim = Limits {
            max_tags: 49,
            ..Limits::default()
        };
        fails(
            run_with(
                &body_of(vec![tag("app", "new", "v", "create")]),
                vec![tagged.clone()],
                &lim,
            ),
            "changes[0].key",
            "limit is 49",
        );
        // Updating an existing tag does not add one.
        ok(run_with(
            &body_of(vec![tag("app", "k1", "w", "update")]),
            vec![tagged],
            &lim,
        ));
    }

    #[test]
    fn create_role_quotas_count_copied_and_new_policies() {
        let mut src = app();
        src.inline_policies = vec![InlinePolicy {
            name: "big".into(),
            document: identity_doc_of(ROLE_INLINE_POLICY_CHARS - 300),
        }];
        src.managed_policies = (0..10)
            .map(|k| AttachedPolicy {
                name: format!("p{k}"),
                arn: format!("arn:aws:iam::{ACCT}:policy/p{k}"),
            })
            .collect();
        src.tags = (0..50)
            .map(|k| Tag {
                key: format!("k{k}"),
                value: "v".into(),
            })
            .collect();
        let clone = |extra: Value| {
            let mut c = json!({"change_type": "create_role", "account_id": ACCT, "role_name": "copy",
                               "clone_from": role_arn("app"), "copy_trust": true, "copy_inline": true,
                               "copy_managed": true, "copy_tags": true});
            if !extra.is_null() {
                c["inline_policies"] = extra;
            }
            c
        };
        ok(run(vec![clone(Value::Null)], vec![src.clone()]));
        ok(run(
            vec![clone(
                json!([{"policy_name": "small", "policy_document": identity_doc_of(300)}]),
            )],
            vec![src.clone()],
        ));
        fails(
            run(
                vec![clone(
                    json!([{"policy_name": "small", "policy_document": identity_doc_of(301)}]),
                )],
                vec![src.clone()],
            ),
            "changes[0].inline_policies",
            "10241",
        );
        let then_attach = managed("copy", &format!("arn:aws:iam::{ACCT}:policy/p10"), "attach");
        fails(
            run(vec![clone(Value::Null), then_attach], vec![src.clone()]),
            "changes[1].arn",
            "11 managed",
        );
        let then_tag = tag("copy", "extra", "v", "create");
        fails(
            run(vec![clone(Value::Null), then_tag], vec![src.clone()]),
            "changes[1].key",
            "51 tags",
        );
        let mut no_trust = src;
        no_trust.trust_policy = None;
        fails(
            run(vec![clone(Value::Null)], vec![no_trust]),
            "changes[0].copy_trust",
            "no trust policy",
        );
    }
}
