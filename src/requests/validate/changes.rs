//! Step 1: the body's shape, field by field, into typed changes. Nothing here knows the synced
//! accounts (that is `state.rs`).

use serde_json::{Map, Value};

use super::grammar::{unknown_key, validate_policy_document};
use super::names::{
    DESCRIPTION_CHARS, MAX_CHANGES, MAX_JUSTIFICATION_CHARS, ROLE_NAME_CHARS, TAG_KEY_CHARS,
    TAG_VALUE_CHARS, is_account_id, join, name_problem, path_problem, tag_text_problem, type_name,
};
use super::{DocKind, Problem};
use crate::requests::model::{
    AccountId, AttachAction, BoundaryChange, BoundaryEdit, Change, ChangeType, CloneSpec,
    CreateRoleChange, Expiry, InlineEdit, InlinePolicyChange, ManagedPolicyArn,
    ManagedPolicyChange, NewInlinePolicy, PolicyDocument, PolicyName, PrincipalRef, ResolvedClone,
    RoleArn, TagChange, TagEdit, TrustPolicyChange, wire_keys,
};
use crate::requests::resource_change::{PolicyStep, ResourceChange, ResourceEdit, ResourceRef};
use crate::resources::model::ResourceKind;

/// What step 1 makes of a body.
pub(super) struct Parsed {
    pub justification: String,
    pub admin_auto_approve: bool,
    pub changes: Vec<Change>,
    /// `break_glass.reason`, when the requester asks to apply at once.
    pub break_glass: Option<String>,
}

/// Keys of the request body.
const BODY_KEYS: &[&str] = &[
    "justification",
    "admin_auto_approve",
    "changes",
    "dry_run",
    "break_glass",
];

/// Shortest break-glass reason: enough to say what is on fire.
pub const BREAK_GLASS_REASON_CHARS: usize = 20;

/// Keys iamdesk computes itself: a client that sends them is refused, never believed.
const SERVER_OWNED: &[&str] = &[
    "id",
    "status",
    "resolved_clone",
    "applied",
    "results",
    "updated_by",
    "delete_version",
    "bucket_tags",
    "region",
    "previous_policy",
];

/// Keys ConsoleMe's own clients send that change nothing (ConsoleMe's `ChangeModel`): accepted
/// and dropped, so those clients keep working.
const CONSOLEME_INERT: &[&str] = &[
    "new",
    "resources",
    "version",
    "old_policy",
    "read_only",
    "source_change_id",
    "original_key",
    "original_value",
];

pub(super) fn parse(body: &Value) -> Result<Parsed, Vec<Problem>> {
    let mut p = Parser::default();
    let parsed = p.body(body);
    match parsed {
        Some(parsed) if p.problems.is_empty() => Ok(parsed),
        _ => Err(p.problems),
    }
}

/// One change alone, as a request body would carry it at `field` (imports: each change of a
/// ConsoleMe request is parsed on its own, so one bad change does not hide the others).
pub(super) fn parse_one(raw: &Value, field: &str) -> Result<Change, Vec<Problem>> {
    let mut p = Parser::default();
    match p.change(raw, field) {
        Some(change) if p.problems.is_empty() => Ok(change),
        _ => Err(p.problems),
    }
}

#[derive(Default)]
struct Parser {
    problems: Vec<Problem>,
}

impl Parser {
    fn problem(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem::new(field, message));
    }

    fn body(&mut self, body: &Value) -> Option<Parsed> {
        let Some(obj) = body.as_object() else {
            self.problem(
                "body",
                format!(
                    "the request body must be a JSON object {{\"justification\": ..., \
                     \"changes\": {{\"changes\": [...]}}}}, not {}",
                    type_name(body)
                ),
            );
            return None;
        };
        for key in obj.keys() {
            if !BODY_KEYS.contains(&key.as_str()) {
                self.problem(key.clone(), unknown_key("request", key, BODY_KEYS));
            }
        }
        let justification = match obj.get("justification") {
            None | Some(Value::Null) => {
                self.problem(
                    "justification",
                    "justification is required: say why the change is needed",
                );
                None
            }
            Some(Value::String(j)) if j.trim().is_empty() => {
                self.problem(
                    "justification",
                    "justification must not be blank: say why the change is needed",
                );
                None
            }
            Some(Value::String(j)) if j.chars().count() > MAX_JUSTIFICATION_CHARS => {
                self.problem(
                    "justification",
                    format!(
                        "justification is {} characters; shorten it to at most \
                         {MAX_JUSTIFICATION_CHARS} (link to a ticket for details)",
                        j.chars().count()
                    ),
                );
                None
            }
            Some(Value::String(j)) => Some(j.trim().to_string()),
            Some(other) => {
                self.problem(
                    "justification",
                    format!("justification must be a string, not {}", type_name(other)),
                );
                None
            }
        };
        let admin_auto_approve = self.opt_bool(obj, "admin_auto_approve", "");
        let break_glass = self.break_glass(obj);
        let _ = self.opt_bool(obj, "dry_run", "");
        let list = match obj.get("changes") {
            Some(Value::Object(inner)) => {
                for key in inner.keys().filter(|k| *k != "changes") {
                    self.problem(
                        join("changes", key),
                        format!(
                            "unknown key `{key}`; changes is {{\"changes\": [change, ...]}} only"
                        ),
                    );
                }
                match inner.get("changes") {
                    Some(Value::Array(list)) => list,
                    None | Some(Value::Null) => {
                        self.problem(
                            "changes.changes",
                            "changes.changes is required: the list of changes",
                        );
                        return None;
                    }
                    Some(other) => {
                        self.problem(
                            "changes.changes",
                            format!("changes.changes must be a list, not {}", type_name(other)),
                        );
                        return None;
                    }
                }
            }
            None | Some(Value::Null) => {
                self.problem(
                    "changes",
                    "changes is required: {\"changes\": [change, ...]}",
                );
                return None;
            }
            Some(other) => {
                self.problem(
                    "changes",
                    format!(
                        "changes must be an object {{\"changes\": [change, ...]}}, not {}",
                        type_name(other)
                    ),
                );
                return None;
            }
        };
        if list.is_empty() {
            self.problem(
                "changes.changes",
                "the request has no changes; add at least one",
            );
        }
        if list.len() > MAX_CHANGES {
            self.problem(
                "changes.changes",
                format!(
                    "the request has {} changes; at most {MAX_CHANGES} are allowed: split it into \
                     several requests",
                    list.len()
                ),
            );
        }
        let mut changes = Vec::new();
        for (i, raw) in list.iter().enumerate() {
            if let Some(change) = self.change(raw, &format!("changes[{i}]")) {
                changes.push(change);
            }
        }
        Some(Parsed {
            justification: justification?,
            admin_auto_approve,
            changes,
            break_glass: break_glass?,
        })
    }

    /// `break_glass: {"reason": "..."}`: `Some(None)` when absent, `None` on a problem.
    fn break_glass(&mut self, obj: &Map<String, Value>) -> Option<Option<String>> {
        let shape = "break_glass is {\"reason\": \"what is on fire and why this cannot wait\"}";
        match obj.get("break_glass") {
            None | Some(Value::Null) => Some(None),
            Some(Value::Object(b)) => {
                for key in b.keys().filter(|k| *k != "reason") {
                    self.problem(
                        join("break_glass", key),
                        format!("unknown key `{key}`; {shape}"),
                    );
                }
                let reason = self.req_str(b, "reason", "break_glass", "why this cannot wait")?;
                let reason = reason.trim();
                if reason.chars().count() < BREAK_GLASS_REASON_CHARS {
                    self.problem(
                        "break_glass.reason",
                        format!(
                            "the break-glass reason must say what is on fire in at least \
                             {BREAK_GLASS_REASON_CHARS} characters"
                        ),
                    );
                    return None;
                }
                if reason.chars().count() > MAX_JUSTIFICATION_CHARS {
                    self.problem(
                        "break_glass.reason",
                        format!("the break-glass reason is limited to {MAX_JUSTIFICATION_CHARS} characters"),
                    );
                    return None;
                }
                Some(Some(reason.to_string()))
            }
            Some(other) => {
                self.problem("break_glass", format!("{shape}, not {}", type_name(other)));
                None
            }
        }
    }

    /// Optional string field: `None` when absent or null (a problem if not a string).
    fn opt_str<'v>(
        &mut self,
        obj: &'v Map<String, Value>,
        key: &str,
        field: &str,
    ) -> Option<&'v str> {
        match obj.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(other) => {
                self.problem(
                    join(field, key),
                    format!("{key} must be a string, not {}", type_name(other)),
                );
                None
            }
        }
    }

    /// Required string field: a problem (with `hint`) when absent.
    fn req_str<'v>(
        &mut self,
        obj: &'v Map<String, Value>,
        key: &str,
        field: &str,
        hint: &str,
    ) -> Option<&'v str> {
        if matches!(obj.get(key), None | Some(Value::Null)) {
            self.problem(join(field, key), format!("{key} is required: {hint}"));
            return None;
        }
        self.opt_str(obj, key, field)
    }

    fn opt_bool(&mut self, obj: &Map<String, Value>, key: &str, field: &str) -> bool {
        match obj.get(key) {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                self.problem(
                    join(field, key),
                    format!("{key} must be true or false, not {}", type_name(other)),
                );
                false
            }
        }
    }

    /// `action`: `attach` (default) or `detach`.
    fn attach_action(&mut self, obj: &Map<String, Value>, field: &str) -> Option<AttachAction> {
        match self.opt_str(obj, "action", field) {
            None if matches!(obj.get("action"), None | Some(Value::Null)) => {
                Some(AttachAction::Attach)
            }
            None => None,
            Some("attach") => Some(AttachAction::Attach),
            Some("detach") => Some(AttachAction::Detach),
            Some(other) => {
                self.problem(
                    join(field, "action"),
                    format!("action `{other}` is not \"attach\" or \"detach\""),
                );
                None
            }
        }
    }

    /// A document at `field`, checked against its grammar.
    fn document(&mut self, doc: &Value, kind: DocKind, field: &str) -> Option<PolicyDocument> {
        let problems = validate_policy_document(doc, kind, field);
        if problems.is_empty() {
            Some(PolicyDocument::checked(doc.clone()))
        } else {
            self.problems.extend(problems);
            None
        }
    }

    /// `policy.policy_document`, required, checked against its grammar.
    fn policy_document(
        &mut self,
        obj: &Map<String, Value>,
        field: &str,
        what: &str,
        kind: DocKind,
    ) -> Option<PolicyDocument> {
        let pf = join(field, "policy");
        let df = join(&pf, "policy_document");
        match obj.get("policy") {
            Some(Value::Object(p)) => {
                for key in p.keys() {
                    if !["policy_document", "version", "policy_sha256"].contains(&key.as_str()) {
                        self.problem(
                            join(&pf, key),
                            format!(
                                "unknown key `{key}`; policy is {{\"policy_document\": {{...}}}}"
                            ),
                        );
                    }
                }
                match p.get("policy_document") {
                    None | Some(Value::Null) => {
                        self.problem(
                            df,
                            format!("policy.policy_document is required: the {what}"),
                        );
                        None
                    }
                    Some(doc) => self.document(doc, kind, &df),
                }
            }
            None | Some(Value::Null) => {
                self.problem(
                    df,
                    format!("policy.policy_document is required: the {what}"),
                );
                None
            }
            Some(other) => {
                self.problem(
                    pf,
                    format!(
                        "policy must be an object {{\"policy_document\": {{...}}}}, not {}",
                        type_name(other)
                    ),
                );
                None
            }
        }
    }

    /// `principal`: `{"principal_type": "AwsResource", "principal_arn": ...}`, shape only.
    fn principal(&mut self, obj: &Map<String, Value>, field: &str) -> Option<PrincipalRef> {
        let pf = join(field, "principal");
        let example = "{\"principal_type\": \"AwsResource\", \"principal_arn\": \
                       \"arn:aws:iam::123456789012:role/name\"}";
        let p = match obj.get("principal") {
            Some(Value::Object(p)) => p,
            None | Some(Value::Null) => {
                self.problem(pf, format!("principal is required: {example}"));
                return None;
            }
            Some(other) => {
                self.problem(
                    pf,
                    format!(
                        "principal must be an object {example}, not {}",
                        type_name(other)
                    ),
                );
                return None;
            }
        };
        for key in p.keys() {
            if !["principal_type", "principal_arn"].contains(&key.as_str()) {
                self.problem(
                    join(&pf, key),
                    format!("unknown key `{key}`; principal is {example}"),
                );
            }
        }
        match p.get("principal_type") {
            None | Some(Value::Null) => {}
            Some(Value::String(t)) if t == "AwsResource" => {}
            Some(_) => self.problem(
                join(&pf, "principal_type"),
                "principal_type must be \"AwsResource\"",
            ),
        }
        let arn = self.req_str(p, "principal_arn", &pf, "the ARN of the role")?;
        match RoleArn::parse(arn) {
            Ok(arn) => Some(PrincipalRef::new(arn)),
            Err(m) => {
                self.problem(join(&pf, "principal_arn"), m);
                None
            }
        }
    }

    fn policy_name(
        &mut self,
        obj: &Map<String, Value>,
        key: &str,
        field: &str,
    ) -> Option<PolicyName> {
        let name = self.req_str(obj, key, field, "the inline policy's name")?;
        match PolicyName::parse(name) {
            Ok(n) => Some(n),
            Err(m) => {
                self.problem(join(field, key), m);
                None
            }
        }
    }

    /// `arn` of a managed policy or boundary.
    fn policy_arn(
        &mut self,
        obj: &Map<String, Value>,
        field: &str,
        required: bool,
    ) -> Option<ManagedPolicyArn> {
        let hint = "the managed policy ARN, e.g. arn:aws:iam::aws:policy/ReadOnlyAccess";
        let arn = if required {
            self.req_str(obj, "arn", field, hint)?
        } else {
            self.opt_str(obj, "arn", field)?
        };
        match ManagedPolicyArn::parse(arn) {
            Ok(a) => Some(a),
            Err(m) => {
                self.problem(join(field, "arn"), m);
                None
            }
        }
    }

    /// `expiration_date`: `Some(None)` when absent, `Some(Some(_))` when it parses, `None` (a
    /// problem recorded) when it does not, or when the change grants nothing that could expire.
    fn expiration(
        &mut self,
        obj: &Map<String, Value>,
        field: &str,
        grants: bool,
    ) -> Option<Option<Expiry>> {
        let ef = join(field, "expiration_date");
        match obj.get("expiration_date") {
            None | Some(Value::Null) => Some(None),
            Some(_) if !grants => {
                self.problem(
                    ef,
                    "expiration_date only applies to a grant (attach, create or update); this \
                     change takes something away: leave it out",
                );
                None
            }
            Some(v) => match Expiry::parse(v) {
                Ok(e) => Some(Some(e)),
                Err(m) => {
                    self.problem(ef, m);
                    None
                }
            },
        }
    }

    /// The keys of one change: known for its type, ConsoleMe's inert ones, or a problem.
    fn keys(&mut self, obj: &Map<String, Value>, kind: ChangeType, field: &str) {
        let allowed = wire_keys(kind);
        for key in obj.keys() {
            let k = key.as_str();
            if k == "change_type" || allowed.contains(&k) || CONSOLEME_INERT.contains(&k) {
                continue;
            }
            let message = if SERVER_OWNED.contains(&k) {
                format!("`{k}` is set by iamdesk, never by a request; leave it out")
            } else if ChangeType::ALL.iter().any(|t| wire_keys(*t).contains(&k)) {
                format!(
                    "`{k}` does not belong to a {} change; it takes {}",
                    kind.as_str(),
                    allowed.join(", ")
                )
            } else {
                unknown_key(&format!("{} change", kind.as_str()), k, allowed)
            };
            self.problem(join(field, k), message);
        }
    }

    fn change(&mut self, raw: &Value, field: &str) -> Option<Change> {
        let Some(obj) = raw.as_object() else {
            self.problem(
                field,
                format!(
                    "each change must be an object with change_type and principal, not {}",
                    type_name(raw)
                ),
            );
            return None;
        };
        let tf = join(field, "change_type");
        let types = "inline_policy, managed_policy, permissions_boundary, assume_role_policy, \
                     resource_tag, create_role, resource_policy, managed_policy_resource";
        let kind = match obj.get("change_type") {
            Some(Value::String(s)) => match ChangeType::parse(s) {
                Some(ct) => ct,
                None => {
                    self.problem(tf, format!("unknown change_type `{s}`; use one of {types}"));
                    return None;
                }
            },
            None | Some(Value::Null) => {
                self.problem(tf, format!("change_type is required: one of {types}"));
                return None;
            }
            Some(other) => {
                self.problem(
                    tf,
                    format!(
                        "change_type must be a string ({types}), not {}",
                        type_name(other)
                    ),
                );
                return None;
            }
        };
        let before = self.problems.len();
        self.keys(obj, kind, field);
        self.not_autogenerated(obj, field);
        // Every field is checked (all problems reported) before any is used.
        let change = match kind {
            ChangeType::InlinePolicy => self.inline_policy(obj, field),
            ChangeType::ManagedPolicy => self.managed_policy(obj, field),
            ChangeType::PermissionsBoundary => self.boundary(obj, field),
            ChangeType::AssumeRolePolicy => self.assume_role_policy(obj, field),
            ChangeType::ResourceTag if !self.principal_is_iam(obj) => self.service_tag(obj, field),
            ChangeType::ResourceTag => self.resource_tag(obj, field),
            ChangeType::CreateRole => self.create_role(obj, field),
            ChangeType::ResourcePolicy => self.resource_policy(obj, field),
            ChangeType::ManagedPolicyResource => self.managed_policy_resource(obj, field),
        };
        change.filter(|_| self.problems.len() == before)
    }

    fn inline_policy(&mut self, obj: &Map<String, Value>, field: &str) -> Option<Change> {
        let principal = self.principal(obj, field);
        let name = self.policy_name(obj, "policy_name", field);
        let action = self.attach_action(obj, field);
        let edit = match action? {
            AttachAction::Attach => InlineEdit::Put(self.policy_document(
                obj,
                field,
                "inline policy",
                DocKind::Identity,
            )?),
            AttachAction::Detach => {
                if obj.get("policy").is_some_and(|p| !p.is_null()) {
                    self.problem(
                        join(field, "policy"),
                        "a detach removes the whole inline policy: leave policy out",
                    );
                }
                InlineEdit::Delete
            }
        };
        let expires = self.expiration(obj, field, matches!(edit, InlineEdit::Put(_)))?;
        Some(Change::InlinePolicy(InlinePolicyChange {
            id: String::new(),
            principal: principal?,
            policy_name: name?,
            edit,
            expires,
        }))
    }

    fn managed_policy(&mut self, obj: &Map<String, Value>, field: &str) -> Option<Change> {
        let principal = self.principal(obj, field);
        let action = self.attach_action(obj, field);
        let arn = self.policy_arn(obj, field, true);
        let expires = self.expiration(obj, field, action == Some(AttachAction::Attach))?;
        Some(Change::ManagedPolicy(ManagedPolicyChange {
            id: String::new(),
            principal: principal?,
            action: action?,
            arn: arn?,
            expires,
        }))
    }

    fn boundary(&mut self, obj: &Map<String, Value>, field: &str) -> Option<Change> {
        let principal = self.principal(obj, field);
        let action = self.attach_action(obj, field);
        let arn = self.policy_arn(obj, field, action != Some(AttachAction::Detach));
        let edit = match action? {
            AttachAction::Attach => BoundaryEdit::Put(arn?),
            AttachAction::Detach => BoundaryEdit::Delete(arn),
        };
        Some(Change::PermissionsBoundary(BoundaryChange {
            id: String::new(),
            principal: principal?,
            edit,
        }))
    }

    fn assume_role_policy(&mut self, obj: &Map<String, Value>, field: &str) -> Option<Change> {
        let principal = self.principal(obj, field);
        let document = self.policy_document(obj, field, "trust policy", DocKind::Trust);
        Some(Change::AssumeRolePolicy(TrustPolicyChange {
            id: String::new(),
            principal: principal?,
            document: document?,
            autogenerated: false,
            source_change_id: None,
        }))
    }

    fn resource_tag(&mut self, obj: &Map<String, Value>, field: &str) -> Option<Change> {
        let principal = self.principal(obj, field);
        let (key, edit) = self.tag_fields(obj, field)?;
        let expires = self.expiration(obj, field, !matches!(edit, TagEdit::Delete))?;
        Some(Change::ResourceTag(TagChange {
            id: String::new(),
            principal: principal?,
            key,
            edit,
            expires,
        }))
    }

    /// `key`, `tag_action` and `value` of a `resource_tag` change.
    fn tag_fields(&mut self, obj: &Map<String, Value>, field: &str) -> Option<(String, TagEdit)> {
        let kf = join(field, "key");
        let key = self
            .req_str(obj, "key", field, "the tag key")
            .filter(|key| {
                let n = key.chars().count();
                let problem = if n == 0 || n > TAG_KEY_CHARS {
                    Some(format!(
                        "tag key is {n} characters; it must be 1 to {TAG_KEY_CHARS}"
                    ))
                } else if key.to_ascii_lowercase().starts_with("aws:") {
                    Some("tag keys starting with `aws:` are reserved for AWS".to_string())
                } else {
                    tag_text_problem(key, "tag key")
                };
                problem.map(|m| self.problem(&kf, m)).is_none()
            });
        let tag_action = match self.req_str(obj, "tag_action", field, "create, update or delete") {
            Some("create") => Some("create"),
            Some("update") => Some("update"),
            Some("delete") => Some("delete"),
            Some(other) => {
                self.problem(
                    join(field, "tag_action"),
                    format!("tag_action `{other}` is not create, update or delete"),
                );
                None
            }
            None => None,
        };
        let vf = join(field, "value");
        let value = if tag_action == Some("delete") {
            self.opt_str(obj, "value", field); // type-checked, unused
            None
        } else {
            self.req_str(obj, "value", field, "the tag value (may be empty)")
                .filter(|value| {
                    let n = value.chars().count();
                    let problem = if n > TAG_VALUE_CHARS {
                        Some(format!(
                            "tag value is {n} characters; at most {TAG_VALUE_CHARS} are allowed"
                        ))
                    } else {
                        tag_text_problem(value, "tag value")
                    };
                    problem.map(|m| self.problem(&vf, m)).is_none()
                })
        };
        let edit = match tag_action? {
            "create" => TagEdit::Create(value?.to_string()),
            "update" => TagEdit::Update(value?.to_string()),
            _ => TagEdit::Delete,
        };
        Some((key?.to_string(), edit))
    }

    /// `autogenerated` is iamdesk's to set: ConsoleMe's clients send `false`, which changes
    /// nothing; `true` from a client would let it pass its own change off as iamdesk's.
    fn not_autogenerated(&mut self, obj: &Map<String, Value>, field: &str) {
        match obj.get("autogenerated") {
            None | Some(Value::Null) | Some(Value::Bool(false)) => {}
            Some(_) => self.problem(
                join(field, "autogenerated"),
                "`autogenerated` is set by iamdesk, never by a request (it marks the \
                 resource-policy half of a cross-account grant that iamdesk adds itself); \
                 leave it out",
            ),
        }
    }

    /// Whether `principal.principal_arn` is for a role (anything but a bucket, queue or topic
    /// ARN, so that a wrong role ARN is told what a role ARN looks like).
    fn principal_is_iam(&self, obj: &Map<String, Value>) -> bool {
        obj.get("principal")
            .and_then(|p| p.get("principal_arn"))
            .and_then(Value::as_str)
            .is_none_or(|a| {
                !["arn:aws:s3:", "arn:aws:sqs:", "arn:aws:sns:"]
                    .iter()
                    .any(|p| a.starts_with(p))
            })
    }

    /// `principal.principal_arn` of a resource change, as a string (shape of `principal` as for
    /// roles).
    fn any_principal(&mut self, obj: &Map<String, Value>, field: &str) -> Option<String> {
        let pf = join(field, "principal");
        let Some(p) = obj.get("principal").and_then(Value::as_object) else {
            self.problem(
                pf,
                "principal is required: {\"principal_type\": \"AwsResource\", \
                 \"principal_arn\": \"<the resource's ARN>\"}",
            );
            return None;
        };
        for key in p.keys() {
            if !["principal_type", "principal_arn"].contains(&key.as_str()) {
                self.problem(join(&pf, key), format!("unknown key `{key}` in principal"));
            }
        }
        let arn = self.req_str(p, "principal_arn", &pf, "an ARN")?;
        if !arn.starts_with("arn:aws:") {
            self.problem(
                join(&pf, "principal_arn"),
                format!("`{arn}` is not an ARN (arn:aws:...)"),
            );
            return None;
        }
        Some(arn.to_string())
    }

    /// A resource ARN at `key`: its kind must be one of `kinds`; the account comes from the ARN
    /// or `account_id` (buckets: resolved from the synced buckets when neither says).
    fn resource_ref(
        &mut self,
        obj: &Map<String, Value>,
        arn: &str,
        key_field: &str,
        field: &str,
        kinds: &[ResourceKind],
    ) -> Option<ResourceRef> {
        let parsed = match ResourceRef::parse_arn(arn) {
            Ok(p) => p,
            Err(m) => {
                self.problem(key_field, m);
                return None;
            }
        };
        if !kinds.contains(&parsed.kind) {
            let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
            self.problem(
                key_field,
                format!(
                    "`{arn}` is a {}; this change takes {}",
                    parsed.kind.as_str(),
                    names.join(" or ")
                ),
            );
            return None;
        }
        let given = self.opt_str(obj, "account_id", field);
        let account = match (given, parsed.account.as_deref()) {
            (Some(g), Some(a)) if g != a => {
                self.problem(
                    join(field, "account_id"),
                    format!("account_id {g} is not the account of `{arn}` ({a})"),
                );
                return None;
            }
            (Some(a), _) | (None, Some(a)) => match AccountId::parse(a) {
                Ok(a) => a,
                Err(m) => {
                    self.problem(join(field, "account_id"), m);
                    return None;
                }
            },
            (None, None) => AccountId::unresolved(),
        };
        Some(ResourceRef {
            kind: parsed.kind,
            account,
            region: parsed.region.unwrap_or_default(),
            name: parsed.name,
            path: parsed.path,
        })
    }

    fn service_tag(&mut self, obj: &Map<String, Value>, field: &str) -> Option<Change> {
        let arn = self.any_principal(obj, field);
        let pf = join(field, "principal.principal_arn");
        let services = [ResourceKind::S3, ResourceKind::Sqs, ResourceKind::Sns];
        let resource = arn
            .as_deref()
            .and_then(|a| self.resource_ref(obj, a, &pf, field, &services));
        let (key, edit) = self.tag_fields(obj, field)?;
        if obj.get("expiration_date").is_some_and(|v| !v.is_null()) {
            self.problem(
                join(field, "expiration_date"),
                "tags on buckets, queues and topics do not expire; leave expiration_date out",
            );
        }
        Some(Change::Resource(Box::new(ResourceChange {
            id: String::new(),
            principal: arn?,
            resource: resource?,
            edit: ResourceEdit::Tag {
                key,
                edit,
                bucket_tags: vec![],
            },
            autogenerated: false,
            source_change_id: None,
            expires: None,
            previous_policy: None,
        })))
    }

    fn resource_policy(&mut self, obj: &Map<String, Value>, field: &str) -> Option<Change> {
        let principal = self.any_principal(obj, field);
        let af = join(field, "arn");
        let services = [ResourceKind::S3, ResourceKind::Sqs, ResourceKind::Sns];
        let resource = self
            .req_str(obj, "arn", field, "the ARN of the bucket, queue or topic")
            .and_then(|a| self.resource_ref(obj, a, &af, field, &services));
        let action = self.attach_action(obj, field);
        let doc = match action? {
            AttachAction::Attach => {
                let doc = self.policy_document(obj, field, "resource policy", DocKind::Resource)?;
                let df = join(field, "policy.policy_document");
                if let Some(r) = &resource {
                    self.problems
                        .extend(super::grammar::resource_policy_problems(
                            doc.as_value(),
                            r,
                            &df,
                        ));
                }
                Some(doc)
            }
            AttachAction::Detach => {
                if obj.get("policy").is_some_and(|p| !p.is_null()) {
                    self.problem(
                        join(field, "policy"),
                        "action \"detach\" removes the whole resource policy: leave policy out",
                    );
                }
                if resource
                    .as_ref()
                    .is_some_and(|r| r.kind == ResourceKind::Sns)
                {
                    self.problem(
                        join(field, "action"),
                        "an SNS topic always has a policy (AWS gives each topic a default one); \
                         replace it with the statements to keep instead of removing it",
                    );
                }
                None
            }
        };
        let expires = self.expiration(obj, field, doc.is_some())?;
        Some(Change::Resource(Box::new(ResourceChange {
            id: String::new(),
            principal: principal?,
            resource: resource?,
            edit: ResourceEdit::Policy(doc),
            autogenerated: false,
            source_change_id: None,
            expires,
            previous_policy: None,
        })))
    }

    fn managed_policy_resource(&mut self, obj: &Map<String, Value>, field: &str) -> Option<Change> {
        let arn = self.any_principal(obj, field);
        let pf = join(field, "principal.principal_arn");
        let resource = arn
            .as_deref()
            .and_then(|a| self.resource_ref(obj, a, &pf, field, &[ResourceKind::ManagedPolicy]));
        let document =
            self.policy_document(obj, field, "managed policy document", DocKind::Identity);
        if let Some(doc) = &document {
            let n = super::names::doc_chars(doc.as_value());
            if n > crate::requests::resource_change::MANAGED_POLICY_CHARS {
                self.problem(
                    join(field, "policy.policy_document"),
                    format!(
                        "the managed policy is {n} characters without whitespace; AWS allows {}. \
                         Merge statements, use wildcards, or split it into two policies",
                        crate::requests::resource_change::MANAGED_POLICY_CHARS
                    ),
                );
            }
        }
        let description = self.opt_str(obj, "description", field).map(str::to_string);
        if let Some(d) = &description
            && d.chars().count() > DESCRIPTION_CHARS
        {
            self.problem(
                join(field, "description"),
                format!("description is limited to {DESCRIPTION_CHARS} characters"),
            );
        }
        Some(Change::Resource(Box::new(ResourceChange {
            id: String::new(),
            principal: arn?,
            resource: resource?,
            edit: ResourceEdit::ManagedPolicy {
                document: document?,
                // Create or publish is decided against the synced account (`state.rs`).
                step: PolicyStep::Create { description },
            },
            autogenerated: false,
            source_change_id: None,
            expires: None,
            previous_policy: None,
        })))
    }

    fn create_role(&mut self, obj: &Map<String, Value>, field: &str) -> Option<Change> {
        let account = match self.req_str(
            obj,
            "account_id",
            field,
            "the 12-digit account to create the role in",
        ) {
            Some(a) if !is_account_id(a) => {
                self.problem(
                    join(field, "account_id"),
                    format!("account_id `{a}` must be 12 digits"),
                );
                None
            }
            Some(a) => AccountId::parse(a).ok(),
            None => None,
        };
        // An optional principal must name the new role (compared below).
        let principal = if obj.get("principal").is_some_and(|p| !p.is_null()) {
            Some(self.principal(obj, field))
        } else {
            None
        };
        let name = self
            .req_str(obj, "role_name", field, "the new role's name")
            .filter(|n| match name_problem(n, "role name", ROLE_NAME_CHARS) {
                Some(m) => {
                    self.problem(join(field, "role_name"), m);
                    false
                }
                None => true,
            });
        let path = match self.opt_str(obj, "path", field) {
            Some(p) => match path_problem(p) {
                Some(m) => {
                    self.problem(join(field, "path"), m);
                    None
                }
                None => Some(p),
            },
            None => Some("/"),
        };
        let description = self.opt_str(obj, "description", field);
        if let Some(d) = description
            && d.chars().count() > DESCRIPTION_CHARS
        {
            self.problem(
                join(field, "description"),
                format!("description is longer than {DESCRIPTION_CHARS} characters; shorten it"),
            );
        }

        // Cloning.
        let copy_trust = self.opt_bool(obj, "copy_trust", field);
        let copy_inline = self.opt_bool(obj, "copy_inline", field);
        let copy_managed = self.opt_bool(obj, "copy_managed", field);
        let copy_tags = self.opt_bool(obj, "copy_tags", field);
        let cf = join(field, "clone_from");
        let mut clone = None;
        match self.opt_str(obj, "clone_from", field) {
            Some(src) => match RoleArn::parse(src) {
                Ok(from) => {
                    clone = Some(CloneSpec {
                        from,
                        copy_trust,
                        copy_inline,
                        copy_managed,
                        copy_tags,
                        resolved: ResolvedClone::default(),
                    })
                }
                Err(m) if m.contains("roles only") => {
                    self.problem(&cf, "clone_from must be a role ARN, not a user")
                }
                Err(m) => self.problem(&cf, m.replace("principal_arn", "clone_from")),
            },
            None => {
                for (flag, on) in [
                    ("copy_trust", copy_trust),
                    ("copy_inline", copy_inline),
                    ("copy_managed", copy_managed),
                    ("copy_tags", copy_tags),
                ] {
                    if on {
                        self.problem(
                            join(field, flag),
                            format!("{flag} needs clone_from: the ARN of the role to copy from"),
                        );
                    }
                }
            }
        }
        let cloning = obj.get("clone_from").is_some_and(|v| !v.is_null());

        // Trust policy: given, or copied.
        let doc_field = join(field, "policy.policy_document");
        let given = obj.get("policy").is_some_and(|p| !p.is_null());
        let mut trust = None;
        if given && copy_trust && cloning {
            self.problem(
                &doc_field,
                "give either a trust policy (policy.policy_document) or copy_trust, not both",
            );
        } else if !(copy_trust && cloning) {
            trust =
                self.policy_document(obj, field, "trust policy of the new role", DocKind::Trust);
        }

        // New inline policies.
        let ipf = join(field, "inline_policies");
        let mut inline = Vec::new();
        match obj.get("inline_policies") {
            None | Some(Value::Null) => {}
            Some(Value::Array(list)) => {
                for (k, p) in list.iter().enumerate() {
                    let pf = format!("{ipf}[{k}]");
                    let Some(p) = p.as_object() else {
                        self.problem(
                            pf,
                            format!(
                                "each inline policy must be an object {{\"policy_name\", \
                                 \"policy_document\"}}, not {}",
                                type_name(p)
                            ),
                        );
                        continue;
                    };
                    for key in p.keys() {
                        if !["policy_name", "policy_document"].contains(&key.as_str()) {
                            self.problem(
                                join(&pf, key),
                                unknown_key(
                                    "inline policy",
                                    key,
                                    &["policy_name", "policy_document"],
                                ),
                            );
                        }
                    }
                    let pname = self.policy_name(p, "policy_name", &pf);
                    if let Some(n) = &pname
                        && inline.iter().any(|q: &NewInlinePolicy| q.policy_name == *n)
                    {
                        self.problem(
                            join(&pf, "policy_name"),
                            format!("inline policy `{n}` is given twice; names must be unique"),
                        );
                    }
                    let df = join(&pf, "policy_document");
                    let doc = match p.get("policy_document") {
                        None | Some(Value::Null) => {
                            self.problem(
                                &df,
                                "policy_document is required: the inline policy document",
                            );
                            None
                        }
                        Some(doc) => self.document(doc, DocKind::Identity, &df),
                    };
                    if let (Some(policy_name), Some(policy_document)) = (pname, doc) {
                        inline.push(NewInlinePolicy {
                            policy_name,
                            policy_document,
                        });
                    }
                }
            }
            Some(other) => self.problem(
                &ipf,
                format!(
                    "inline_policies must be a list of {{\"policy_name\", \"policy_document\"}}, \
                     not {}",
                    type_name(other)
                ),
            ),
        }

        let role = RoleArn::from_parts(account?, path?, name?);
        if let Some(given) = principal {
            let given = given?;
            if given.principal_arn != role {
                self.problem(
                    join(field, "principal.principal_arn"),
                    format!(
                        "for create_role, principal_arn must be the new role's ARN {role} (or be \
                         left out)"
                    ),
                );
            }
        }
        if trust.is_none() && !(copy_trust && cloning) {
            return None;
        }
        Some(Change::CreateRole(Box::new(CreateRoleChange {
            id: String::new(),
            role,
            description: description.map(str::to_string),
            trust,
            inline_policies: inline,
            clone,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use serde_json::json;

    #[test]
    fn unknown_and_server_owned_keys_are_refused_by_name() {
        let mut change = inline_attach("app", "p", s3_read());
        change["resolved_clone"] = json!({"from": "arn:aws:iam::123456789012:role/admin",
            "managed_policies": ["arn:aws:iam::aws:policy/AdministratorAccess"]});
        change["surprise"] = json!(true);
        change["arn"] = json!("arn:aws:iam::aws:policy/ReadOnlyAccess");
        let p = fails(
            run(vec![change], vec![app()]),
            "changes[0].resolved_clone",
            "set by iamdesk",
        );
        assert!(p.iter().any(|x| x.field == "changes[0].surprise"), "{p:#?}");
        assert!(
            p.iter()
                .any(|x| x.field == "changes[0].arn" && x.message.contains("does not belong")),
            "{p:#?}"
        );
        let mut body = body_of(vec![inline_attach("app", "p", s3_read())]);
        body["extra"] = json!(1);
        fails(
            run_with(&body, vec![app()], &Default::default()),
            "extra",
            "unknown request key",
        );
    }

    #[test]
    fn consoleme_inert_keys_are_accepted_and_dropped() {
        let mut change = inline_attach("app", "p", s3_read());
        change["new"] = json!(true);
        change["resources"] = json!([]);
        change["policy"]["policy_sha256"] = json!("abc");
        let v = ok(run(vec![change], vec![app()]));
        let stored = serde_json::to_value(&v.changes[0]).expect("serializes");
        assert!(stored.get("new").is_none() && stored.get("resources").is_none());
        assert!(stored["policy"].get("policy_sha256").is_none());
    }

    #[test]
    fn a_client_cannot_create_a_role_with_its_own_resolved_clone() {
        let change = json!({"change_type": "create_role", "account_id": ACCT,
            "role_name": "innocent", "policy": {"policy_document": trust()},
            "resolved_clone": {"from": role_arn("app"),
                "managed_policies": ["arn:aws:iam::aws:policy/AdministratorAccess"],
                "tags": [{"key": "consoleme-authorized", "value": "mallory@example.com"}]}});
        fails(
            run(vec![change], vec![app()]),
            "changes[0].resolved_clone",
            "set by iamdesk",
        );
    }
}

#[cfg(test)]
mod rule_tests {
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

    // ---------------------------------------------------------------- robustness

    fn deep(depth: usize, array: bool) -> Value {
        let mut v = json!("leaf");
        for _ in 0..depth {
            v = if array {
                json!([v])
            } else {
                json!({"Statement": [v], "Effect": "Allow"})
            };
        }
        v
    }

    #[test]
    fn a_realistic_request_of_every_change_type_passes() {
        let mut bounded = role("bounded");
        bounded.permissions_boundary = Some(format!("arn:aws:iam::{ACCT}:policy/boundary"));
        let changes = vec![
            inline_attach(
                "app",
                "export",
                identity(json!({"Sid": "Export1", "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:AbortMultipartUpload"],
                "Resource": "arn:aws:s3:::exports/${aws:username}/*",
                "Condition": {"StringEquals": {"aws:RequestedRegion": ["us-east-1", "eu-west-1"]},
                              "Bool": {"aws:SecureTransport": true}}})),
            ),
            json!({"change_type": "inline_policy", "principal": principal_of("app"),
                   "policy_name": "read", "action": "detach"}),
            managed(
                "app",
                "arn:aws:iam::aws:policy/service-role/AWSGlueServiceRole",
                "attach",
            ),
            managed("app", "arn:aws:iam::aws:policy/ReadOnlyAccess", "detach"),
            json!({"change_type": "permissions_boundary", "principal": principal_of("app"),
                   "arn": format!("arn:aws:iam::{ACCT}:policy/org/boundary"), "action": "attach"}),
            json!({"change_type": "permissions_boundary", "principal": principal_of("bounded"),
                   "action": "detach"}),
            json!({"change_type": "assume_role_policy", "principal": principal_of("app"),
                   "policy": {"policy_document": {"Version": "2012-10-17", "Statement": [
                       {"Effect": "Allow", "Principal": {"Service": ["ec2.amazonaws.com", "glue.amazonaws.com"]},
                        "Action": "sts:AssumeRole"},
                       {"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{ACCT}:role/ci")},
                        "Action": ["sts:AssumeRole", "sts:TagSession"],
                        "Condition": {"StringEquals": {"sts:ExternalId": "x1"}}}]}}}),
            tag("app", "owner", "data-eng@example.com", "create"),
            tag("app", "team", "data platform", "update"),
            json!({"change_type": "resource_tag", "principal": principal_of("bounded"), "key": "cost",
                   "tag_action": "create", "value": ""}),
            json!({"change_type": "create_role", "account_id": ACCT, "role_name": "export-worker",
                   "path": "/service/", "description": "Runs the nightly export",
                   "policy": {"policy_document": trust()},
                   "inline_policies": [{"policy_name": "s3", "policy_document": s3_read()}]}),
            json!({"change_type": "create_role", "account_id": ACCT, "role_name": "app2",
                   "clone_from": role_arn("app"), "copy_trust": true, "copy_inline": true,
                   "copy_managed": true, "copy_tags": true}),
        ];
        let v = ok(run(changes, vec![app(), bounded]));
        assert_eq!(v.changes.len(), 12);
        assert!(v.warnings.is_empty(), "{:#?}", v.warnings);
        assert_eq!(v.changes[0].kind(), ChangeType::InlinePolicy);
        assert!(
            matches!(&v.changes[0], Change::InlinePolicy(c) if c.policy_name.as_str() == "export")
        );
        assert!(
            matches!(&v.changes[7], Change::ResourceTag(c) if matches!(c.edit, TagEdit::Create(_)))
        );
        assert_eq!(
            v.changes[10].target().to_string(),
            "arn:aws:iam::123456789012:role/service/export-worker"
        );
        let Change::CreateRole(clone) = &v.changes[11] else {
            panic!("not a create_role: {:?}", v.changes[11]);
        };
        let pinned = clone.clone.as_ref().expect("a clone");
        assert!(pinned.copy_inline && pinned.copy_tags);
        assert_eq!(pinned.resolved.from, role_arn("app"));
        assert_eq!(pinned.resolved.tags.len(), 1, "the source's tag is pinned");
        assert_eq!(clone.role.path(), "/");
        let ids: std::collections::BTreeSet<&str> = v.changes.iter().map(Change::id).collect();
        assert_eq!(ids.len(), 12, "every change gets its own id");
    }

    #[test]
    fn defaults_are_filled_and_the_change_round_trips() {
        let change = json!({"change_type": "managed_policy", "principal": principal_of("app"),
                            "arn": "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"});
        let v = ok(run(vec![change], vec![app()]));
        let c = &v.changes[0];
        assert!(matches!(c, Change::ManagedPolicy(m) if m.action == AttachAction::Attach));
        assert_eq!(c.target().to_string(), role_arn("app"));
        let wire = serde_json::to_value(c).expect("serializes");
        assert_eq!(wire["change_type"], "managed_policy");
        assert_eq!(wire["action"], "attach");
        assert!(!c.id().is_empty() && wire["id"] == c.id());
        assert!(wire.get("copy_trust").is_none() && wire.get("key").is_none());
        let back: Change = serde_json::from_value(wire).expect("parses");
        assert_eq!(back, *c);
    }

    #[test]
    fn a_new_role_can_be_changed_later_in_the_same_request() {
        let create = json!({"change_type": "create_role", "account_id": ACCT, "role_name": "fresh",
                            "policy": {"policy_document": trust()}});
        let tagged = tag("fresh", "team", "x", "create");
        ok(run(vec![create, tagged], vec![]));
    }

    // ---------------------------------------------------------------- body

    #[test]
    fn justification_is_required_non_blank_and_bounded() {
        let change = tag("app", "k", "v", "create");
        let mut body = body_of(vec![change.clone()]);
        body.as_object_mut().unwrap().remove("justification");
        fails(
            run_with(&body, vec![app()], &Limits::default()),
            "justification",
            "required",
        );
        body["justification"] = json!("   \n");
        fails(
            run_with(&body, vec![app()], &Limits::default()),
            "justification",
            "blank",
        );
        body["justification"] = json!(42);
        fails(
            run_with(&body, vec![app()], &Limits::default()),
            "justification",
            "string",
        );
        body["justification"] = json!("é".repeat(MAX_JUSTIFICATION_CHARS));
        ok(run_with(&body, vec![app()], &Limits::default()));
        body["justification"] = json!("é".repeat(MAX_JUSTIFICATION_CHARS + 1));
        fails(
            run_with(&body, vec![app()], &Limits::default()),
            "justification",
            "2001 characters",
        );
    }

    #[test]
    fn changes_must_be_a_non_empty_list_of_at_most_25() {
        fails(run(vec![], vec![]), "changes.changes", "no changes");
        let many = |n: usize| {
            (0..n)
                .map(|k| tag("app", &format!("k{k}"), "v", "create"))
                .collect::<Vec<_>>()
        };
        ok(run(many(MAX_CHANGES), vec![app()]));
        fails(
            run(many(MAX_CHANGES + 1), vec![app()]),
            "changes.changes",
            "26 changes",
        );
        let lim = Limits::default();
        fails(
            run_with(&json!({"justification": "x"}), vec![], &lim),
            "changes",
            "required",
        );
        fails(
            run_with(&json!({"justification": "x", "changes": []}), vec![], &lim),
            "changes",
            "object",
        );
        fails(
            run_with(&json!({"justification": "x", "changes": {}}), vec![], &lim),
            "changes.changes",
            "required",
        );
        fails(
            run_with(
                &json!({"justification": "x", "changes": {"changes": {}}}),
                vec![],
                &lim,
            ),
            "changes.changes",
            "list",
        );
        fails(
            run_with(&json!([1, 2]), vec![], &lim),
            "body",
            "JSON object",
        );
        let mut body = body_of(vec![tag("app", "k", "v", "create")]);
        body["admin_auto_approve"] = json!("yes");
        fails(
            run_with(&body, vec![app()], &lim),
            "admin_auto_approve",
            "true or false",
        );
    }

    #[test]
    fn every_problem_is_collected_not_just_the_first() {
        let mut body = body_of(vec![
            json!({"change_type": "nope"}),
            json!(7),
            inline_attach(
                "app",
                "bad name!",
                json!({"Statement": {"Effect": "Maybe"}}),
            ),
        ]);
        body["justification"] = json!("");
        let p = fails(
            run_with(&body, vec![app()], &Limits::default()),
            "justification",
            "blank",
        );
        let fields: Vec<&str> = p.iter().map(|x| x.field.as_str()).collect();
        for f in [
            "changes[0].change_type",
            "changes[1]",
            "changes[2].policy_name",
            "changes[2].policy.policy_document.Statement.Effect",
            "changes[2].policy.policy_document.Statement.Action",
            "changes[2].policy.policy_document.Statement.Resource",
        ] {
            assert!(fields.contains(&f), "{f} missing from {fields:?}");
        }
    }

    // ---------------------------------------------------------------- policy grammar

    #[test]
    fn problems_name_the_exact_field_path() {
        let doc = json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"},
            {"Effect": "allow", "Action": "s3:GetObject", "Resource": "*"}]});
        let p = fails(
            run(vec![inline_attach("app", "p", doc)], vec![app()]),
            "changes[0].policy.policy_document.Statement[1].Effect",
            "\"Allow\" or \"Deny\"",
        );
        assert_eq!(p.len(), 1, "{p:#?}");
        assert_eq!(
            p[0].to_string(),
            format!(
                "changes[0].policy.policy_document.Statement[1].Effect: {}",
                p[0].message
            )
        );
    }

    #[test]
    fn document_problems_in_a_change_are_prefixed_with_the_change_path() {
        let doc = json!({"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "bucket"}]});
        fails(
            run(vec![inline_attach("app", "p", doc)], vec![app()]),
            "changes[0].policy.policy_document.Statement[0].Resource",
            "ARN",
        );
        let no_doc = json!({"change_type": "inline_policy", "principal": principal_of("app"), "policy_name": "p", "action": "attach"});
        fails(
            run(vec![no_doc], vec![app()]),
            "changes[0].policy.policy_document",
            "required",
        );
        let bad_policy = json!({"change_type": "inline_policy", "principal": principal_of("app"), "policy_name": "p", "policy": "x"});
        fails(
            run(vec![bad_policy], vec![app()]),
            "changes[0].policy",
            "must be an object",
        );
        let trust_in_identity = json!({"change_type": "assume_role_policy", "principal": principal_of("app"),
                                       "policy": {"policy_document": s3_read()}});
        fails(
            run(vec![trust_in_identity], vec![app()]),
            "changes[0].policy.policy_document.Statement[0].Resource",
            "trust policy",
        );
        let create = json!({"change_type": "create_role", "account_id": ACCT, "role_name": "n",
                            "policy": {"policy_document": trust()},
                            "inline_policies": [{"policy_name": "p", "policy_document": {"Statement": {"Effect": "Allow"}}}]});
        fails(
            run(vec![create], vec![]),
            "changes[0].inline_policies[0].policy_document.Statement.Action",
            "required",
        );
    }

    // ---------------------------------------------------------------- ARNs and names

    #[test]
    fn principal_arn_rules() {
        let with = |arn: &str| {
            json!({"change_type": "resource_tag", "key": "k", "value": "v", "tag_action": "create",
                                      "principal": {"principal_type": "AwsResource", "principal_arn": arn}})
        };
        for bad in [
            "arn:aws:iam::12345678901:role/app",
            "arn:aws:iam::12345678901a:role/app",
            "arn:aws:iam::123456789012:group/app",
            "role/app",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::123456789012:role//app",
            "arn:aws:iam::123456789012:role/a pp",
            "arn:aws-cn:iam::123456789012:role/app",
        ] {
            fails(
                run(vec![with(bad)], vec![app()]),
                "changes[0].principal.principal_arn",
                "arn:aws:iam::123456789012:role/",
            );
        }
        let long = format!("arn:aws:iam::{ACCT}:role/{}", "r".repeat(65));
        fails(
            run(vec![with(&long)], vec![]),
            "changes[0].principal.principal_arn",
            "at most 64",
        );
        let mut pathed = role("svc");
        pathed.arn = format!("arn:aws:iam::{ACCT}:role/team/data/svc");
        let mut user = role("bob");
        user.kind = ResourceKind::User;
        user.arn = format!("arn:aws:iam::{ACCT}:user/bob");
        ok(run(vec![with(&pathed.arn.clone())], vec![pathed]));
        fails(
            run(vec![with(&user.arn.clone())], vec![user]),
            "changes[0].principal.principal_arn",
            "roles only",
        );
        let wrong_type = json!({"change_type": "resource_tag", "key": "k", "value": "v", "tag_action": "create",
                                "principal": {"principal_type": "HoneybeeAwsResourceTemplate", "principal_arn": role_arn("app")}});
        fails(
            run(vec![wrong_type], vec![app()]),
            "changes[0].principal.principal_type",
            "AwsResource",
        );
        let no_principal = json!({"change_type": "resource_tag", "key": "k", "value": "v", "tag_action": "create"});
        fails(
            run(vec![no_principal], vec![app()]),
            "changes[0].principal",
            "required",
        );
        let no_arn = json!({"change_type": "resource_tag", "key": "k", "value": "v", "tag_action": "create",
                            "principal": {"principal_type": "AwsResource"}});
        fails(
            run(vec![no_arn], vec![app()]),
            "changes[0].principal.principal_arn",
            "required",
        );
    }

    #[test]
    fn managed_policy_arn_rules() {
        for good in [
            "arn:aws:iam::aws:policy/ReadOnlyAccess",
            "arn:aws:iam::aws:policy/service-role/AWSGlueServiceRole",
            "arn:aws:iam::123456789012:policy/team/x.y@z",
        ] {
            ok(run(vec![managed("app", good, "attach")], vec![app()]));
        }
        for bad in [
            "arn:aws:iam::amazon:policy/X",
            "arn:aws:iam::123:policy/X",
            "arn:aws:iam::aws:role/X",
            "arn:aws:iam::aws:policy/",
            "arn:aws:iam::aws:policy/bad name",
            "ReadOnlyAccess",
        ] {
            fails(
                run(vec![managed("app", bad, "attach")], vec![app()]),
                "changes[0].arn",
                "managed policy ARN",
            );
        }
        let name129 = format!("arn:aws:iam::aws:policy/{}", "p".repeat(129));
        fails(
            run(vec![managed("app", &name129, "attach")], vec![app()]),
            "changes[0].arn",
            "at most 128",
        );
        fails(
            run(
                vec![managed(
                    "app",
                    "arn:aws:iam::999999999999:policy/X",
                    "attach",
                )],
                vec![app()],
            ),
            "changes[0].arn",
            "same account",
        );
        let no_arn = json!({"change_type": "managed_policy", "principal": principal_of("app"), "action": "attach"});
        fails(run(vec![no_arn], vec![app()]), "changes[0].arn", "required");
        fails(
            run(
                vec![managed("app", "arn:aws:iam::aws:policy/X", "remove")],
                vec![app()],
            ),
            "changes[0].action",
            "\"attach\" or \"detach\"",
        );
    }

    #[test]
    fn name_and_path_rules() {
        assert_eq!(
            name_problem(&"a".repeat(64), "role name", ROLE_NAME_CHARS),
            None
        );
        assert!(
            name_problem(&"a".repeat(65), "role name", ROLE_NAME_CHARS)
                .is_some_and(|m| m.contains("at most 64"))
        );
        assert_eq!(
            name_problem("a+b=c,d.e@f_g-h", "role name", ROLE_NAME_CHARS),
            None
        );
        for bad in ["", "a b", "a/b", "é", "a:b", "a*"] {
            assert!(
                name_problem(bad, "role name", ROLE_NAME_CHARS).is_some(),
                "{bad}"
            );
        }
        for good in ["/", "/a/", "/a/b-c/", "/a.b@c/"] {
            assert_eq!(path_problem(good), None, "{good}");
        }
        for bad in ["", "a", "/a", "a/", "//", "/a//b/", "/a b/", "/é/"] {
            assert!(path_problem(bad).is_some(), "{bad}");
        }
        assert!(path_problem(&format!("/{}/", "p".repeat(511))).is_some());

        let create = |name: &str, path: Value| {
            json!({"change_type": "create_role", "account_id": ACCT,
            "role_name": name, "path": path, "policy": {"policy_document": trust()}})
        };
        ok(run(vec![create(&"r".repeat(64), json!("/x/"))], vec![]));
        fails(
            run(vec![create(&"r".repeat(65), json!("/"))], vec![]),
            "changes[0].role_name",
            "at most 64",
        );
        fails(
            run(vec![create("r r", json!("/"))], vec![]),
            "changes[0].role_name",
            "contains ` `",
        );
        fails(
            run(vec![create("r", json!("x"))], vec![]),
            "changes[0].path",
            "path",
        );
        fails(
            run(vec![create("r", json!(1))], vec![]),
            "changes[0].path",
            "string",
        );

        ok(run(
            vec![inline_attach("app", &"p".repeat(128), s3_read())],
            vec![app()],
        ));
        fails(
            run(
                vec![inline_attach("app", &"p".repeat(129), s3_read())],
                vec![app()],
            ),
            "changes[0].policy_name",
            "at most 128",
        );
        fails(
            run(vec![inline_attach("app", "p/q", s3_read())], vec![app()]),
            "changes[0].policy_name",
            "contains `/`",
        );
    }

    // ---------------------------------------------------------------- quotas

    #[test]
    fn tag_key_and_value_lengths_and_characters() {
        ok(run(
            vec![tag("app", &"k".repeat(128), &"v".repeat(256), "create")],
            vec![app()],
        ));
        fails(
            run(
                vec![tag("app", &"k".repeat(129), "v", "create")],
                vec![app()],
            ),
            "changes[0].key",
            "129 characters",
        );
        fails(
            run(vec![tag("app", "", "v", "create")], vec![app()]),
            "changes[0].key",
            "1 to 128",
        );
        fails(
            run(
                vec![tag("app", "k", &"v".repeat(257), "create")],
                vec![app()],
            ),
            "changes[0].value",
            "257 characters",
        );
        fails(
            run(
                vec![tag("app", "aws:cloudformation", "v", "create")],
                vec![app()],
            ),
            "changes[0].key",
            "reserved",
        );
        fails(
            run(vec![tag("app", "a#b", "v", "create")], vec![app()]),
            "changes[0].key",
            "contains `#`",
        );
        fails(
            run(vec![tag("app", "k", "a;b", "create")], vec![app()]),
            "changes[0].value",
            "contains `;`",
        );
        ok(run(
            vec![tag("app", "Équipe 1/2", "dönüş-x@y.z:+=", "create")],
            vec![app()],
        ));
        let no_value = json!({"change_type": "resource_tag", "principal": principal_of("app"), "key": "k", "tag_action": "create"});
        fails(
            run(vec![no_value], vec![app()]),
            "changes[0].value",
            "required",
        );
        let bad_action = json!({"change_type": "resource_tag", "principal": principal_of("app"), "key": "k", "value": "v", "tag_action": "upsert"});
        fails(
            run(vec![bad_action], vec![app()]),
            "changes[0].tag_action",
            "create, update or delete",
        );
        let no_action = json!({"change_type": "resource_tag", "principal": principal_of("app"), "key": "k", "value": "v"});
        fails(
            run(vec![no_action], vec![app()]),
            "changes[0].tag_action",
            "required",
        );
    }

    // ---------------------------------------------------------------- current state

    #[test]
    fn create_role_rules() {
        let base = || {
            json!({"change_type": "create_role", "account_id": ACCT, "role_name": "new",
                             "policy": {"policy_document": trust()}})
        };
        ok(run(vec![base()], vec![app()]));
        let with = |k: &str, v: Value| {
            let mut c = base();
            c[k] = v;
            c
        };
        let without = |k: &str| {
            let mut c = base();
            c.as_object_mut().unwrap().remove(k);
            c
        };
        fails(
            run(vec![with("role_name", json!("app"))], vec![app()]),
            "changes[0].role_name",
            "already exists",
        );
        fails(
            run(vec![base(), base()], vec![]),
            "changes[1].role_name",
            "already creates it",
        );
        fails(
            run(vec![without("account_id")], vec![]),
            "changes[0].account_id",
            "required",
        );
        fails(
            run(vec![with("account_id", json!("1234"))], vec![]),
            "changes[0].account_id",
            "12 digits",
        );
        fails(
            run(vec![with("account_id", json!(123456789012u64))], vec![]),
            "changes[0].account_id",
            "string",
        );
        fails(
            run(vec![without("role_name")], vec![]),
            "changes[0].role_name",
            "required",
        );
        fails(
            run(vec![without("policy")], vec![]),
            "changes[0].policy.policy_document",
            "required",
        );
        fails(
            run(vec![with("description", json!("d".repeat(1001)))], vec![]),
            "changes[0].description",
            "1000",
        );
        fails(
            run(vec![with("copy_tags", json!(true))], vec![]),
            "changes[0].copy_tags",
            "needs clone_from",
        );
        fails(
            run(vec![with("copy_trust", json!("yes"))], vec![]),
            "changes[0].copy_trust",
            "true or false",
        );
        fails(
            run(vec![with("clone_from", json!(role_arn("ghost")))], vec![]),
            "changes[0].clone_from",
            "not a synced role",
        );
        fails(
            run(vec![with("clone_from", json!("app"))], vec![]),
            "changes[0].clone_from",
            "clone_from must look like",
        );
        let mut both = with("clone_from", json!(role_arn("app")));
        both["copy_trust"] = json!(true);
        fails(
            run(vec![both], vec![app()]),
            "changes[0].policy.policy_document",
            "not both",
        );
        fails(
            run(vec![with("principal", principal_of("other"))], vec![]),
            "changes[0].principal.principal_arn",
            "new role's ARN",
        );
        ok(run(vec![with("principal", principal_of("new"))], vec![]));
        let dup = with(
            "inline_policies",
            json!([{"policy_name": "a", "policy_document": s3_read()},
                                                 {"policy_name": "a", "policy_document": s3_read()}]),
        );
        fails(
            run(vec![dup], vec![]),
            "changes[0].inline_policies[1].policy_name",
            "twice",
        );
        fails(
            run(vec![with("inline_policies", json!({}))], vec![]),
            "changes[0].inline_policies",
            "list",
        );
        fails(
            run(
                vec![with("inline_policies", json!([{"policy_name": "a"}]))],
                vec![],
            ),
            "changes[0].inline_policies[0].policy_document",
            "required",
        );
    }

    #[test]
    fn odd_json_shapes_never_panic() {
        let odd = vec![
            Value::Null,
            json!(true),
            json!(0),
            json!(-1.5),
            json!(u64::MAX),
            json!(""),
            json!("x"),
            json!("*"),
            json!([]),
            json!({}),
            json!([null]),
            json!([[]]),
            json!({"": null}),
            json!([1, "a", {}]),
            json!({"Effect": "Allow"}),
            deep(300, true),
            deep(300, false),
        ];
        let templates = vec![
            inline_attach("app", "p", s3_read()),
            json!({"change_type": "inline_policy", "principal": principal_of("app"), "policy_name": "read", "action": "detach"}),
            managed("app", "arn:aws:iam::aws:policy/ReadOnlyAccess", "detach"),
            json!({"change_type": "permissions_boundary", "principal": principal_of("app"), "arn": "arn:aws:iam::aws:policy/X", "action": "attach"}),
            json!({"change_type": "assume_role_policy", "principal": principal_of("app"),
                   "policy": {"policy_document": {"Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole",
                              "Condition": {"StringEquals": {"k": "v"}}}]}}}),
            tag("app", "team", "v", "update"),
            json!({"change_type": "create_role", "account_id": ACCT, "role_name": "n", "path": "/", "description": "d",
                   "policy": {"policy_document": trust()}, "clone_from": role_arn("app"), "copy_inline": true,
                   "inline_policies": [{"policy_name": "a", "policy_document": s3_read()}]}),
        ];
        let pointers = [
            "",
            "/change_type",
            "/principal",
            "/principal/principal_arn",
            "/principal/principal_type",
            "/policy_name",
            "/action",
            "/arn",
            "/policy",
            "/policy/policy_document",
            "/policy/policy_document/Version",
            "/policy/policy_document/Statement",
            "/policy/policy_document/Statement/0",
            "/policy/policy_document/Statement/0/Effect",
            "/policy/policy_document/Statement/0/Action",
            "/policy/policy_document/Statement/0/Resource",
            "/policy/policy_document/Statement/0/Principal",
            "/policy/policy_document/Statement/0/Principal/AWS",
            "/policy/policy_document/Statement/0/Condition",
            "/policy/policy_document/Statement/0/Condition/StringEquals",
            "/policy/policy_document/Statement/0/Condition/StringEquals/k",
            "/key",
            "/value",
            "/tag_action",
            "/account_id",
            "/role_name",
            "/path",
            "/description",
            "/inline_policies",
            "/inline_policies/0",
            "/inline_policies/0/policy_document",
            "/inline_policies/0/policy_document/Statement",
            "/clone_from",
            "/copy_inline",
            "/copy_trust",
        ];
        let lookup = Roles(vec![app()]);
        let limits = Limits::default();
        let mut runs = 0;
        for o in &odd {
            // The whole body, the changes wrapper, the list and a change.
            for body in [
                o.clone(),
                json!({"justification": o, "changes": o}),
                json!({"justification": "j", "admin_auto_approve": o, "changes": {"changes": o}}),
                body_of(vec![o.clone(), o.clone()]),
            ] {
                let _ = validate_request(&body, &lookup, &limits);
                runs += 1;
            }
            for kind in [DocKind::Identity, DocKind::Trust] {
                let _ = validate_policy_document(o, kind, "");
                let _ = policy_warnings(o, kind, "");
                let _ = validate_policy_document(&json!({"Statement": o}), kind, "");
                let _ = validate_policy_document(
                    &json!({"Statement": [{"Effect": "Allow", "Action": o, "Resource": o,
                    "Principal": o, "Condition": o, "Sid": o}]}),
                    kind,
                    "",
                );
            }
            for t in &templates {
                for p in pointers {
                    let mut change = t.clone();
                    match change.pointer_mut(p) {
                        Some(slot) => *slot = o.clone(),
                        None => continue,
                    }
                    let r =
                        validate_request(&body_of(vec![change.clone(), change]), &lookup, &limits);
                    if let Err(problems) = r {
                        assert!(problems.iter().all(|x| !x.message.is_empty()));
                    }
                    runs += 1;
                }
            }
        }
        assert!(runs > 1000, "{runs}");
        // A deep document is reported, not recursed into.
        let p = validate_policy_document(&deep(300, false), DocKind::Identity, "d");
        assert!(!p.is_empty());
    }
}
