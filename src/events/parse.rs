//! Message bodies as they arrive from a queue or the SNS endpoint, parsed once into typed
//! events. Shapes accepted (checked against AWS's documented formats):
//!
//! - an SNS envelope (`Type`, `MessageId`, `TopicArn`, `Message` — a JSON *string* —, ...) whose
//!   `Message` is one of the shapes below (SQS subscriptions without raw delivery);
//! - an AWS Config notification (`messageType` = `ComplianceChangeNotification`; fields
//!   `awsAccountId`, `configRuleName`, `resourceType`, `resourceId`, `awsRegion`,
//!   `newEvaluationResult.complianceType`, `oldEvaluationResult`, `notificationCreationTime`);
//! - an EventBridge event: `AWS API Call via CloudTrail` (the CloudTrail record in `detail`) or
//!   `Config Rules Compliance Change` (the Config fields in `detail`).
//!
//! Known shapes iamdesk has nothing to do with (other Config notifications, other EventBridge
//! events, subscription confirmations on a queue) are [`Parsed::Ignored`]; anything else is a
//! [`ParseError`].

use chrono::{DateTime, Utc};
use serde_json::Value;

/// Bodies larger than this are not parsed (SQS and SNS cap messages at 256 KB anyway).
pub const MAX_BODY: usize = 256 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Event(Event),
    /// A known shape with nothing to do; the reason is logged.
    Ignored(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Compliance(ComplianceChange),
    ApiCall(Box<ApiCall>),
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{0}")]
pub struct ParseError(pub String);

fn bad(message: impl Into<String>) -> ParseError {
    ParseError(message.into())
}

/// One AWS Config compliance change of one rule on one resource.
#[derive(Debug, Clone, PartialEq)]
pub struct ComplianceChange {
    pub account_id: String,
    pub rule: String,
    pub resource_type: String,
    pub resource_id: String,
    pub region: String,
    pub compliance: String,
    pub old_compliance: Option<String>,
    /// When Config recorded the new result (else the notification time).
    pub recorded_at: DateTime<Utc>,
    pub notified_at: DateTime<Utc>,
}

/// One CloudTrail record of an API call.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiCall {
    pub event_id: String,
    /// e.g. `iam.amazonaws.com`.
    pub source: String,
    /// e.g. `PutRolePolicy`.
    pub name: String,
    pub at: DateTime<Utc>,
    /// The account the call was made in (`recipientAccountId`).
    pub account_id: String,
    pub read_only: Option<bool>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub request: Value,
    /// ARNs in the record's `resources`.
    pub resources: Vec<String>,
    pub caller: Caller,
}

/// `userIdentity`: who made the call.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Caller {
    /// `AssumedRole`, `IAMUser`, `Root`, `AWSService`, ...
    pub kind: String,
    pub arn: Option<String>,
    /// For a role session: the role (`sessionContext.sessionIssuer`).
    pub role_arn: Option<String>,
    pub role_name: Option<String>,
    pub role_account: Option<String>,
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn required(v: &Value, path: &[&str]) -> Result<String, ParseError> {
    str_at(v, path)
        .map(str::to_string)
        .ok_or_else(|| bad(format!("no '{}'", path.join("."))))
}

fn time(raw: &str) -> Result<DateTime<Utc>, ParseError> {
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| bad(format!("'{raw}' is not a time: {e}")))
}

/// Parse one message body.
pub fn parse(body: &str) -> Result<Parsed, ParseError> {
    if body.len() > MAX_BODY {
        return Err(bad(format!("the body is larger than {MAX_BODY} bytes")));
    }
    let value: Value = serde_json::from_str(body).map_err(|e| bad(format!("not JSON: {e}")))?;
    parse_value(&value, true)
}

fn parse_value(v: &Value, may_be_envelope: bool) -> Result<Parsed, ParseError> {
    if !v.is_object() {
        return Err(bad("not a JSON object"));
    }
    if may_be_envelope && v.get("TopicArn").is_some() && v.get("Type").is_some() {
        return match str_at(v, &["Type"]) {
            Some("Notification") => {
                let inner = required(v, &["Message"])?;
                let inner: Value = serde_json::from_str(&inner)
                    .map_err(|e| bad(format!("the SNS Message is not JSON: {e}")))?;
                parse_value(&inner, false)
            }
            Some(other) => Ok(Parsed::Ignored(format!("SNS {other} message"))),
            None => Err(bad("an SNS envelope without a Type")),
        };
    }
    if let Some(kind) = str_at(v, &["detail-type"]) {
        let detail = v
            .get("detail")
            .filter(|d| d.is_object())
            .ok_or_else(|| bad("an EventBridge event without a detail"))?;
        return match kind {
            "AWS API Call via CloudTrail" => Ok(Parsed::Event(Event::ApiCall(Box::new(api_call(
                v, detail,
            )?)))),
            "Config Rules Compliance Change" => {
                Ok(Parsed::Event(Event::Compliance(compliance(detail)?)))
            }
            other => Ok(Parsed::Ignored(format!("EventBridge '{other}' event"))),
        };
    }
    if let Some(kind) = str_at(v, &["messageType"]) {
        return match kind {
            "ComplianceChangeNotification" => Ok(Parsed::Event(Event::Compliance(compliance(v)?))),
            other => Ok(Parsed::Ignored(format!("AWS Config {other}"))),
        };
    }
    Err(bad(
        "neither an SNS envelope, an EventBridge event nor an AWS Config notification",
    ))
}

fn compliance(v: &Value) -> Result<ComplianceChange, ParseError> {
    let notified_at = time(&required(v, &["notificationCreationTime"])?)?;
    let recorded_at = match str_at(v, &["newEvaluationResult", "resultRecordedTime"]) {
        Some(t) => time(t)?,
        None => notified_at,
    };
    // The resource is named at the top, and again inside the evaluation result's identifier.
    let qualifier = [
        "newEvaluationResult",
        "evaluationResultIdentifier",
        "evaluationResultQualifier",
    ];
    let pick = |field: &str| -> Result<String, ParseError> {
        str_at(v, &[field])
            .or_else(|| {
                let mut path = qualifier.to_vec();
                path.push(field);
                str_at(v, &path)
            })
            .map(str::to_string)
            .ok_or_else(|| bad(format!("no '{field}'")))
    };
    let account_id = required(v, &["awsAccountId"])?;
    if account_id.len() != 12 || !account_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(format!(
            "awsAccountId '{account_id}' is not an account id"
        )));
    }
    Ok(ComplianceChange {
        account_id,
        rule: pick("configRuleName")?,
        resource_type: pick("resourceType")?,
        resource_id: pick("resourceId")?,
        region: required(v, &["awsRegion"])?,
        compliance: required(v, &["newEvaluationResult", "complianceType"])?,
        old_compliance: str_at(v, &["oldEvaluationResult", "complianceType"]).map(str::to_string),
        recorded_at,
        notified_at,
    })
}

fn api_call(event: &Value, d: &Value) -> Result<ApiCall, ParseError> {
    let account_id = str_at(d, &["recipientAccountId"])
        .or_else(|| str_at(event, &["account"]))
        .map(str::to_string)
        .ok_or_else(|| bad("no 'detail.recipientAccountId'"))?;
    let at = match str_at(d, &["eventTime"]).or_else(|| str_at(event, &["time"])) {
        Some(t) => time(t)?,
        None => return Err(bad("no 'detail.eventTime'")),
    };
    let id = d.get("userIdentity").cloned().unwrap_or(Value::Null);
    let issuer = ["sessionContext", "sessionIssuer"];
    let issuer_field = |f: &str| {
        let mut path = issuer.to_vec();
        path.push(f);
        str_at(&id, &path).map(str::to_string)
    };
    let caller = Caller {
        kind: str_at(&id, &["type"]).unwrap_or_default().to_string(),
        arn: str_at(&id, &["arn"]).map(str::to_string),
        role_arn: (issuer_field("type").as_deref() == Some("Role"))
            .then(|| issuer_field("arn"))
            .flatten(),
        role_name: issuer_field("userName"),
        role_account: issuer_field("accountId"),
    };
    let resources = d
        .get("resources")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| str_at(r, &["ARN"]).map(str::to_string))
        .collect();
    Ok(ApiCall {
        event_id: str_at(d, &["eventID"])
            .or_else(|| str_at(event, &["id"]))
            .map(str::to_string)
            .ok_or_else(|| bad("no 'detail.eventID'"))?,
        source: required(d, &["eventSource"])?,
        name: required(d, &["eventName"])?,
        at,
        account_id,
        read_only: d.get("readOnly").and_then(Value::as_bool),
        error_code: str_at(d, &["errorCode"]).map(str::to_string),
        error_message: str_at(d, &["errorMessage"]).map(str::to_string),
        request: d.get("requestParameters").cloned().unwrap_or(Value::Null),
        resources,
        caller,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub fn config_message(compliance: &str) -> Value {
        json!({
            "awsAccountId": "123456789012",
            "configRuleName": "restricted-ssh",
            "configRuleARN": "arn:aws:config:us-east-1:123456789012:config-rule/config-rule-abc",
            "resourceType": "AWS::EC2::SecurityGroup",
            "resourceId": "sg-0123",
            "awsRegion": "us-east-1",
            "newEvaluationResult": {
                "evaluationResultIdentifier": {"evaluationResultQualifier": {
                    "configRuleName": "restricted-ssh", "resourceType": "AWS::EC2::SecurityGroup",
                    "resourceId": "sg-0123"}},
                "complianceType": compliance,
                "resultRecordedTime": "2024-05-01T10:00:00.000Z",
            },
            "oldEvaluationResult": null,
            "notificationCreationTime": "2024-05-01T10:00:01.500Z",
            "messageType": "ComplianceChangeNotification",
            "recordVersion": "1.0"
        })
    }

    pub fn cloudtrail(detail: Value) -> Value {
        json!({"version": "0", "id": "e-1", "detail-type": "AWS API Call via CloudTrail",
               "source": "aws.iam", "account": "123456789012", "time": "2024-05-01T10:00:00Z",
               "region": "us-east-1", "resources": [], "detail": detail})
    }

    #[test]
    fn config_in_an_sns_envelope_and_bare() {
        let inner = config_message("NON_COMPLIANT");
        let envelope = json!({"Type": "Notification", "MessageId": "m", "TopicArn":
            "arn:aws:sns:us-east-1:123456789012:config", "Subject": "[AWS Config:us-east-1]",
            "Message": inner.to_string(), "Timestamp": "2024-05-01T10:00:02.000Z",
            "SignatureVersion": "1", "Signature": "x", "SigningCertURL": "https://x"});
        for body in [envelope.to_string(), inner.to_string()] {
            let Ok(Parsed::Event(Event::Compliance(c))) = parse(&body) else {
                panic!("{body}")
            };
            assert_eq!(c.rule, "restricted-ssh");
            assert_eq!(c.account_id, "123456789012");
            assert_eq!(c.resource_type, "AWS::EC2::SecurityGroup");
            assert_eq!(c.resource_id, "sg-0123");
            assert_eq!(c.compliance, "NON_COMPLIANT");
            assert_eq!(c.old_compliance, None);
        }
    }

    #[test]
    fn eventbridge_config_and_cloudtrail() {
        let ev = json!({"detail-type": "Config Rules Compliance Change", "source": "aws.config",
                        "detail": config_message("COMPLIANT")});
        let Ok(Parsed::Event(Event::Compliance(c))) = parse(&ev.to_string()) else {
            panic!()
        };
        assert_eq!(c.compliance, "COMPLIANT");
        let ct = cloudtrail(json!({
            "eventVersion": "1.08", "eventID": "abc", "eventTime": "2024-05-01T10:00:00Z",
            "eventSource": "s3.amazonaws.com", "eventName": "GetObject",
            "recipientAccountId": "123456789012", "errorCode": "AccessDenied",
            "userIdentity": {"type": "AssumedRole",
                "arn": "arn:aws:sts::123456789012:assumed-role/app/i-1",
                "sessionContext": {"sessionIssuer": {"type": "Role", "userName": "app",
                    "arn": "arn:aws:iam::123456789012:role/svc/app", "accountId": "123456789012"}}},
            "requestParameters": {"bucketName": "b", "key": "k"}}));
        let Ok(Parsed::Event(Event::ApiCall(a))) = parse(&ct.to_string()) else {
            panic!()
        };
        assert_eq!(a.name, "GetObject");
        assert_eq!(
            a.caller.role_arn.as_deref(),
            Some("arn:aws:iam::123456789012:role/svc/app")
        );
        assert_eq!(a.caller.role_name.as_deref(), Some("app"));
        assert_eq!(a.error_code.as_deref(), Some("AccessDenied"));
    }

    #[test]
    fn known_shapes_are_ignored_and_garbage_is_an_error() {
        let item_change = json!({"messageType": "ConfigurationItemChangeNotification"});
        assert!(matches!(
            parse(&item_change.to_string()),
            Ok(Parsed::Ignored(_))
        ));
        let confirm = json!({"Type": "SubscriptionConfirmation", "TopicArn": "arn:aws:sns:x"});
        assert!(matches!(
            parse(&confirm.to_string()),
            Ok(Parsed::Ignored(_))
        ));
        for garbage in [
            "not json",
            "[]",
            "{}",
            r#"{"Type":"Notification","TopicArn":"t","Message":"not json"}"#,
            r#"{"messageType":"ComplianceChangeNotification"}"#,
            r#"{"detail-type":"AWS API Call via CloudTrail","detail":{}}"#,
        ] {
            assert!(parse(garbage).is_err(), "{garbage}");
        }
        assert!(parse(&"x".repeat(MAX_BODY + 1)).is_err());
    }
}
