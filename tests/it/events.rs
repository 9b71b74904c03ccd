//! Events from AWS against moto: Config findings published to a real SNS topic fanned out to a
//! real SQS queue reach a local Slack stand-in (once; resolved later), an IAM change made
//! directly in moto shows on the role page within 5 s of its CloudTrail event, an access denial
//! becomes a prefilled request, and garbage never stops the consumer. SNS-over-HTTPS signatures
//! with keys and certificates made here.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use iamdesk::config::Config;
use iamdesk::store::PageRequest;
use serde_json::{Value, json};

use crate::support::{
    TestApp, account_id, create_role, csrf_for, free_port, iam_in, moto_endpoint, spoke_app, unique,
};

const ADMIN: &str = "secops@example.com";

async fn sdk() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await
}

async fn sqs() -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(&sdk().await)
}

/// A fresh queue: its URL and ARN.
async fn queue() -> (String, String) {
    let sqs = sqs().await;
    let url = sqs
        .create_queue()
        .queue_name(unique("events-"))
        .send()
        .await
        .expect("create queue")
        .queue_url()
        .expect("url")
        .to_string();
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes");
    let arn = attrs
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
        .expect("arn")
        .to_string();
    (url, arn)
}

/// A local incoming-webhook receiver recording every post.
async fn slack_standin() -> (String, Arc<Mutex<Vec<Value>>>) {
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let rx = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let rx = rx.clone();
            async move {
                if let Ok(mut v) = rx.lock() {
                    v.push(body);
                }
                "ok"
            }
        }),
    );
    let port = free_port();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://127.0.0.1:{port}/hook"), received)
}

fn posts(received: &Arc<Mutex<Vec<Value>>>) -> Vec<Value> {
    received.lock().map(|v| v.clone()).unwrap_or_default()
}

/// Poll `check` every 100 ms for at most `within`; the time it took when it became true.
async fn eventually<F, Fut>(within: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < within {
        if check().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

struct World {
    app: TestApp,
    account: String,
    queue_url: String,
    queue_arn: String,
    slack: Arc<Mutex<Vec<Value>>>,
}

/// A moto spoke account with role `app`, a queue consumed by the app (polled every second),
/// Slack pointed at a local stand-in, and the outbox worker running.
async fn world(tune: impl FnOnce(&mut Config)) -> Option<World> {
    moto_endpoint()?;
    let account = account_id();
    create_role(&iam_in(&account).await, "app", &[]).await;
    let (queue_url, queue_arn) = queue().await;
    let (hook, slack) = slack_standin().await;
    let q = queue_url.clone();
    let app = spoke_app(&account, |c| {
        c.url = "https://iamdesk.example.com".into();
        c.groups.can_admin = vec!["admins".into()];
        c.slack.notifications_enabled = true;
        c.slack.webhook_url = Some(hook);
        c.outbox.poll_seconds = 1;
        c.events.queues = vec![q];
        c.events.wait_seconds = 0;
        tune(c);
    })
    .await;
    iamdesk::events::consumer::spawn(&app.state.0);
    tokio::spawn(iamdesk::notify::worker::run(app.state.0.clone()));
    Some(World {
        app,
        account,
        queue_url,
        queue_arn,
        slack,
    })
}

impl World {
    async fn page(&self, path: &str) -> (u16, String) {
        let resp = self
            .app
            .client
            .get(self.app.url(path))
            .header("x-user", ADMIN)
            .header("x-groups", "admins")
            .send()
            .await
            .expect("GET");
        (resp.status().as_u16(), resp.text().await.expect("text"))
    }

    async fn send(&self, body: &str) {
        sqs()
            .await
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .expect("send message");
    }

    fn role_arn(&self) -> String {
        format!("arn:aws:iam::{}:role/app", self.account)
    }

    fn handled(&self) -> u64 {
        self.app.state.events.stats.snapshot().handled
    }
}

fn config_message(account: &str, rule: &str, resource_id: &str, compliance: &str) -> Value {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    json!({
        "awsAccountId": account,
        "configRuleName": rule,
        "configRuleARN": format!("arn:aws:config:us-east-1:{account}:config-rule/config-rule-x"),
        "resourceType": "AWS::IAM::Role",
        "resourceId": resource_id,
        "awsRegion": "us-east-1",
        "newEvaluationResult": {
            "evaluationResultIdentifier": {"evaluationResultQualifier": {
                "configRuleName": rule, "resourceType": "AWS::IAM::Role", "resourceId": resource_id}},
            "complianceType": compliance,
            "resultRecordedTime": now,
        },
        "oldEvaluationResult": null,
        "notificationCreationTime": now,
        "messageType": "ComplianceChangeNotification",
        "recordVersion": "1.0"
    })
}

fn cloudtrail(account: &str, detail: Value) -> String {
    json!({"version": "0", "id": uuid::Uuid::new_v4().to_string(),
           "detail-type": "AWS API Call via CloudTrail", "source": "aws.iam", "account": account,
           "time": chrono::Utc::now().to_rfc3339(), "region": "us-east-1", "resources": [],
           "detail": detail})
    .to_string()
}

#[tokio::test]
async fn config_findings_reach_slack_once_then_resolve() {
    let Some(w) = world(|_| {}).await else {
        return;
    };
    let role_id = iam_in(&w.account)
        .await
        .get_role()
        .role_name("app")
        .send()
        .await
        .expect("get role")
        .role()
        .map(|r| r.role_id().to_string())
        .expect("role id");
    // Config → SNS topic → SQS subscription (moto fans it out), as seed 002's accounts do.
    let sns = aws_sdk_sns::Client::new(&sdk().await);
    let topic = sns
        .create_topic()
        .name(unique("config-"))
        .send()
        .await
        .expect("topic")
        .topic_arn()
        .expect("arn")
        .to_string();
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(&w.queue_arn)
        .send()
        .await
        .expect("subscribe");
    let rule = unique("iam-no-wildcards-");
    let publish = |compliance: &'static str| {
        let (sns, topic, rule, account, id) = (
            sns.clone(),
            topic.clone(),
            rule.clone(),
            w.account.clone(),
            role_id.clone(),
        );
        async move {
            sns.publish()
                .topic_arn(topic)
                .subject("[AWS Config:us-east-1] compliance change")
                .message(config_message(&account, &rule, &id, compliance).to_string())
                .send()
                .await
                .expect("publish");
        }
    };

    publish("NON_COMPLIANT").await;
    assert!(
        eventually(Duration::from_secs(15), || async {
            posts(&w.slack).len() == 1
        })
        .await
        .is_some(),
        "the alert reached Slack"
    );
    let alert = &posts(&w.slack)[0]["attachments"][0];
    assert_eq!(alert["title"], rule.as_str());
    assert_eq!(alert["color"], "#D50200");
    let text = alert["text"].as_str().expect("text");
    assert!(text.contains(&format!("{} (spoke)", w.account)), "{text}");
    assert!(
        text.contains(&format!("AWS::IAM::Role {role_id}")),
        "{text}"
    );
    assert!(text.contains("us-east-1"), "{text}");
    assert!(
        text.contains(&format!(
            "<https://iamdesk.example.com/policies/edit/{}/iamrole/app|Open it in iamdesk>",
            w.account
        )),
        "{text}"
    );
    let (status, findings) = w.page("/admin/findings").await;
    assert_eq!(status, 200);
    assert!(
        findings.contains(&rule) && findings.contains(&role_id),
        "{findings}"
    );

    // The same finding again: handled, not re-posted (not even written to the outbox).
    let before = w.handled();
    tokio::time::sleep(Duration::from_millis(5)).await;
    publish("NON_COMPLIANT").await;
    assert!(
        eventually(Duration::from_secs(15), || async { w.handled() > before })
            .await
            .is_some()
    );
    let slack_messages = w
        .app
        .state
        .store
        .list_outbox(None, &PageRequest::first(500))
        .await
        .expect("outbox")
        .items
        .into_iter()
        .filter(|m| m.channel == "slack")
        .count();
    assert_eq!(slack_messages, 1, "the repeat was suppressed");

    // Back to compliant: a short resolved message, and the finding is closed.
    publish("COMPLIANT").await;
    assert!(
        eventually(Duration::from_secs(15), || async {
            posts(&w.slack).len() == 2
        })
        .await
        .is_some(),
        "resolved reached Slack"
    );
    let resolved = &posts(&w.slack)[1]["attachments"][0];
    assert_eq!(resolved["color"], "#2EB67D");
    assert!(
        resolved["text"]
            .as_str()
            .unwrap_or_default()
            .starts_with("Resolved:")
    );
    let (_, findings) = w.page("/admin/findings").await;
    assert!(!findings.contains(&rule), "no longer open");
}

#[tokio::test]
async fn a_role_changed_in_moto_shows_on_its_page_within_5_s_of_its_event() {
    let Some(w) = world(|_| {}).await else {
        return;
    };
    let page = "/policies/edit/{account}/iamrole/app".replace("{account}", &w.account);
    let (_, before) = w.page(&page).await;
    assert!(!before.contains("break-glass"));
    // Somebody changes the role directly in AWS...
    iam_in(&w.account)
        .await
        .put_role_policy()
        .role_name("app")
        .policy_name("break-glass")
        .policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#,
        )
        .send()
        .await
        .expect("put role policy");
    // ...and EventBridge delivers its CloudTrail record (moto emits none: this is its stand-in).
    let by = format!("arn:aws:sts::{}:assumed-role/Admin/alice", w.account);
    w.send(&cloudtrail(
        &w.account,
        json!({
            "eventVersion": "1.08", "eventID": uuid::Uuid::new_v4().to_string(),
            "eventTime": chrono::Utc::now().to_rfc3339(), "eventSource": "iam.amazonaws.com",
            "eventName": "PutRolePolicy", "awsRegion": "us-east-1",
            "recipientAccountId": w.account, "readOnly": false,
            "userIdentity": {"type": "AssumedRole", "arn": by,
                "sessionContext": {"sessionIssuer": {"type": "Role", "userName": "Admin",
                    "arn": format!("arn:aws:iam::{}:role/Admin", w.account)}}},
            "requestParameters": {"roleName": "app", "policyName": "break-glass"}
        }),
    ))
    .await;
    let line = format!("changed outside iamdesk by {by}: PutRolePolicy");
    let took = eventually(Duration::from_secs(5), || async {
        let (_, html) = w.page(&page).await;
        html.contains("break-glass") && html.contains(&line)
    })
    .await;
    assert!(
        took.is_some(),
        "the role page did not show the change within 5 s"
    );
    eprintln!("the role page showed the change {took:?} after its event was queued");
}

#[tokio::test]
async fn an_access_denial_becomes_a_prefilled_request() {
    let Some(w) = world(|_| {}).await else {
        return;
    };
    let denied = |id: &str| {
        cloudtrail(
            &w.account,
            json!({
                "eventVersion": "1.08", "eventID": id, "eventTime": chrono::Utc::now().to_rfc3339(),
                "eventSource": "s3.amazonaws.com", "eventName": "GetObject",
                "recipientAccountId": w.account, "errorCode": "AccessDenied",
                "errorMessage": format!("User: arn:aws:sts::{}:assumed-role/app/i-0abc is not \
                    authorized to perform: s3:GetObject on resource: \
                    arn:aws:s3:::reports/2024/q1.csv because no identity-based policy allows the \
                    s3:GetObject action", w.account),
                "userIdentity": {"type": "AssumedRole",
                    "arn": format!("arn:aws:sts::{}:assumed-role/app/i-0abc", w.account),
                    "sessionContext": {"sessionIssuer": {"type": "Role", "userName": "app",
                        "arn": w.role_arn(), "accountId": w.account}}},
                "requestParameters": {"bucketName": "reports", "key": "2024/q1.csv"}
            }),
        )
    };
    w.send(&denied("d-1")).await;
    w.send(&denied("d-2")).await;
    let api = format!("/api/v2/roles/{}/app/denies", w.account);
    let listed = || async {
        let (_, body) = w.page(&api).await;
        serde_json::from_str::<Value>(&body).unwrap_or(Value::Null)
    };
    let found = eventually(Duration::from_secs(15), || async {
        listed().await["denies"][0]["count"] == 2
    })
    .await;
    let listed = listed().await;
    assert!(found.is_some(), "{listed}");
    let d = &listed["denies"][0];
    assert_eq!(d["action"], "s3:GetObject");
    assert_eq!(d["resource"], "arn:aws:s3:::reports/2024/q1.csv");
    assert_eq!(
        d["suggested_policy"]["Statement"][0],
        json!({"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::reports/2024/q1.csv"]})
    );

    // The role page lists it with "Request this", which opens the form prefilled.
    let page = format!("/policies/edit/{}/iamrole/app", w.account);
    let (_, html) = w.page(&page).await;
    assert!(html.contains("Request this") && html.contains("s3:GetObject"));
    let link = d["request_url"].as_str().expect("request_url");
    let (status, form) = w.page(link).await;
    assert_eq!(status, 200);
    assert!(
        form.contains(r#"value="iamdesk-allow-s3-GetObject""#),
        "{form}"
    );
    assert!(form.contains("arn:aws:s3:::reports/2024/q1.csv"));
    assert!(form.contains(r#"<option value="inline_policy:attach" selected>"#));

    // Submitted as is, it goes through the validator and becomes a request.
    let suggestion = iamdesk::events::denies::suggestion(&iamdesk::events::model::Denial {
        role: String::new(),
        role_arn: w.role_arn(),
        action: "s3:GetObject".into(),
        resource: "arn:aws:s3:::reports/2024/q1.csv".into(),
        error_code: "AccessDenied".into(),
        count: 2,
        first_seen: chrono::Utc::now(),
        last_seen: chrono::Utc::now(),
    });
    let (cookie, token) = csrf_for(&w.app).await;
    let resp = w
        .app
        .client
        .post(w.app.url(&format!("{page}/request")))
        .header("x-user", "dev@example.com")
        .header("cookie", cookie)
        .form(&[
            ("csrf_token", token.as_str()),
            ("kind", "inline_policy:attach"),
            ("policy_name", suggestion.policy_name.as_str()),
            ("policy_document", suggestion.policy_document.as_str()),
            ("justification", suggestion.justification.as_str()),
        ])
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 303, "{:?}", resp.text().await);
    let location = resp.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    let id = location.rsplit('/').next().expect("id");
    let (_, request) = w.page(&format!("/api/v2/requests/{id}")).await;
    let request: Value = serde_json::from_str(&request).expect("json");
    let change = &request["changes"]["changes"][0];
    assert_eq!(change["policy_name"], "iamdesk-allow-s3-GetObject");
    assert_eq!(
        change["policy"]["policy_document"]["Statement"][0]["Resource"][0],
        "arn:aws:s3:::reports/2024/q1.csv"
    );
}

#[tokio::test]
async fn garbage_messages_do_not_stop_the_consumer() {
    let Some(w) = world(|c| c.events.unparseable_retry_seconds = 600).await else {
        return;
    };
    w.send("not json at all").await;
    w.send(r#"{"hello": "world"}"#).await;
    w.send(r#"{"Type":"Notification","TopicArn":"arn:aws:sns:us-east-1:123456789012:t","Message":"{oops"}"#)
        .await;
    // Then a good one: it is handled all the same.
    w.send(&cloudtrail(
        &w.account,
        json!({
            "eventID": "after-garbage", "eventTime": chrono::Utc::now().to_rfc3339(),
            "eventSource": "iam.amazonaws.com", "eventName": "TagRole",
            "recipientAccountId": w.account,
            "userIdentity": {"type": "IAMUser", "arn": format!("arn:aws:iam::{}:user/bob", w.account)},
            "requestParameters": {"roleName": "app", "tags": [{"key": "team", "value": "data"}]}
        }),
    ))
    .await;
    let page = format!("/policies/edit/{}/iamrole/app", w.account);
    assert!(
        eventually(Duration::from_secs(15), || async {
            w.page(&page)
                .await
                .1
                .contains("changed outside iamdesk by arn:aws:iam::")
        })
        .await
        .is_some(),
        "the good message after the garbage was handled"
    );
    let stats = w.app.state.events.stats.snapshot();
    assert_eq!(stats.unparseable, 3, "{stats:?}");
    // The good one deleted; the garbage not: hidden until the redrive policy takes it to the
    // dead-letter queue.
    let counts = || async {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let attrs = sqs()
            .await
            .get_queue_attributes()
            .queue_url(&w.queue_url)
            .attribute_names(A::All)
            .send()
            .await
            .expect("attributes");
        let count = |name: A| {
            attrs
                .attributes()
                .and_then(|a| a.get(&name))
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0)
        };
        (
            count(A::ApproximateNumberOfMessages),
            count(A::ApproximateNumberOfMessagesNotVisible),
        )
    };
    let settled = eventually(Duration::from_secs(10), || async {
        counts().await == (0, 3)
    })
    .await;
    assert!(
        settled.is_some(),
        "(visible, hidden) = {:?}",
        counts().await
    );
    let (_, findings) = w.page("/admin/findings").await;
    assert!(findings.contains("3 unparseable"), "{findings}");
}

mod signatures {
    //! `POST /api/v2/events/sns` with keys and a certificate made here, served from a local
    //! server the verifier is pointed at (the URL rules still apply to the message's own URL).

    use super::*;
    use base64::Engine as _;

    const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:config-topic";
    const CERT_URL: &str =
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0123456789abcdef.pem";

    struct Signer {
        pkcs8: Vec<u8>,
        cert_pem: String,
    }

    impl Signer {
        fn new() -> Signer {
            let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("rsa key");
            let params = rcgen::CertificateParams::new(vec!["sns.amazonaws.com".to_string()])
                .expect("params");
            let cert = params.self_signed(&key).expect("certificate");
            Signer {
                pkcs8: key.serialize_der(),
                cert_pem: cert.pem(),
            }
        }

        fn sign(&self, version: &str, text: &str) -> String {
            let sig = match version {
                "1" => {
                    use rsa::pkcs8::DecodePrivateKey as _;
                    use rsa::signature::{SignatureEncoding as _, Signer as _};
                    let key = rsa::RsaPrivateKey::from_pkcs8_der(&self.pkcs8).expect("key");
                    let signer = rsa::pkcs1v15::SigningKey::<sha1::Sha1>::new(key);
                    signer.sign(text.as_bytes()).to_vec()
                }
                _ => {
                    let key = aws_lc_rs::rsa::KeyPair::from_pkcs8(&self.pkcs8).expect("key");
                    let mut sig = vec![0; key.public_modulus_len()];
                    key.sign(
                        &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                        &aws_lc_rs::rand::SystemRandom::new(),
                        text.as_bytes(),
                        &mut sig,
                    )
                    .expect("sign");
                    sig
                }
            };
            base64::engine::general_purpose::STANDARD.encode(sig)
        }
    }

    fn notification(message: &str) -> Value {
        json!({
            "Type": "Notification",
            "MessageId": uuid::Uuid::new_v4().to_string(),
            "TopicArn": TOPIC,
            "Subject": "[AWS Config:us-east-1] compliance change",
            "Message": message,
            "Timestamp": "2024-05-01T10:00:02.000Z",
            "SignatureVersion": "1",
            "SigningCertURL": CERT_URL,
            "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
        })
    }

    fn signed(signer: &Signer, mut env: Value, version: &str) -> Value {
        env["SignatureVersion"] = json!(version);
        env["Signature"] = json!("");
        let parsed: iamdesk::events::sns::Envelope =
            serde_json::from_value(env.clone()).expect("envelope");
        let text = iamdesk::events::sns::string_to_sign(&parsed).expect("string to sign");
        env["Signature"] = json!(signer.sign(version, &text));
        env
    }

    /// A local stand-in for SNS's host: the certificate, and the confirmation URL (counted).
    async fn sns_standin(cert_pem: String) -> (String, Arc<Mutex<Vec<String>>>) {
        let confirmed: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = confirmed.clone();
        let app = axum::Router::new()
            .route(
                "/SimpleNotificationService-0123456789abcdef.pem",
                axum::routing::get(move || {
                    let pem = cert_pem.clone();
                    async move { pem }
                }),
            )
            .route(
                "/",
                axum::routing::get(move |uri: axum::http::Uri| {
                    let seen = seen.clone();
                    async move {
                        if let Ok(mut v) = seen.lock() {
                            v.push(uri.to_string());
                        }
                        "<ConfirmSubscriptionResponse/>"
                    }
                }),
            );
        let port = free_port();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (format!("http://127.0.0.1:{port}"), confirmed)
    }

    async fn app() -> (TestApp, Signer, Arc<Mutex<Vec<String>>>) {
        let signer = Signer::new();
        let (origin, confirmed) = sns_standin(signer.cert_pem.clone()).await;
        let (mut config, dir) = TestApp::demo_config();
        config.events.sns_topics = vec![TOPIC.into()];
        let mut app = TestApp::spawn(config).await;
        app.keep(dir);
        app.state.events.sns.fetch_from_for_tests(&origin);
        (app, signer, confirmed)
    }

    async fn post(app: &TestApp, body: &Value) -> u16 {
        app.client
            .post(app.url("/api/v2/events/sns"))
            .header("content-type", "text/plain; charset=UTF-8")
            .header("x-amz-sns-message-type", "Notification")
            .body(body.to_string())
            .send()
            .await
            .expect("POST")
            .status()
            .as_u16()
    }

    async fn finding(app: &TestApp, rule: &str) -> Option<iamdesk::store::Finding> {
        let key = iamdesk::events::model::Finding::key_of(
            "123456789012",
            "us-east-1",
            rule,
            "AWS::IAM::Role",
            "AROAEXAMPLE",
        );
        app.state
            .store
            .get_finding(&key)
            .await
            .expect("get finding")
    }

    #[tokio::test]
    async fn valid_v1_and_v2_signatures_are_accepted() {
        let (app, signer, _) = app().await;
        for version in ["1", "2"] {
            let rule = unique("rule-");
            let message =
                config_message("123456789012", &rule, "AROAEXAMPLE", "NON_COMPLIANT").to_string();
            let body = signed(&signer, notification(&message), version);
            assert_eq!(post(&app, &body).await, 200, "SignatureVersion {version}");
            assert!(
                finding(&app, &rule).await.is_some(),
                "acted on (v{version})"
            );
        }
    }

    #[tokio::test]
    async fn tampered_foreign_http_and_unknown_topic_messages_are_refused() {
        let (app, signer, confirmed) = app().await;
        let rule = unique("rule-");
        let message =
            config_message("123456789012", &rule, "AROAEXAMPLE", "NON_COMPLIANT").to_string();
        let good = signed(&signer, notification(&message), "2");

        let mut changed = good.clone();
        changed["Message"] = json!(message.replace("NON_COMPLIANT", "COMPLIANT"));
        let mut subject = good.clone();
        subject["Subject"] = json!("something else");
        let mut foreign = notification(&message);
        foreign["SigningCertURL"] = json!(
            "https://sns.us-east-1.amazonaws.com.attacker.example/SimpleNotificationService-0123456789abcdef.pem"
        );
        let foreign = signed(&signer, foreign, "2");
        let mut other_host = notification(&message);
        other_host["SigningCertURL"] =
            json!("https://attacker.example/SimpleNotificationService-0123456789abcdef.pem");
        let other_host = signed(&signer, other_host, "2");
        let mut http = notification(&message);
        http["SigningCertURL"] = json!(CERT_URL.replace("https://", "http://"));
        let http = signed(&signer, http, "2");
        let mut topic = notification(&message);
        topic["TopicArn"] = json!("arn:aws:sns:us-east-1:123456789012:somebody-elses");
        let topic = signed(&signer, topic, "2");
        let mut version = good.clone();
        version["SignatureVersion"] = json!("3");

        for (what, body) in [
            ("a changed message", &changed),
            ("a changed subject", &subject),
            ("a foreign certificate host", &foreign),
            ("another certificate host", &other_host),
            ("an http certificate URL", &http),
            ("an unknown topic", &topic),
            ("an unknown signature version", &version),
        ] {
            assert_eq!(post(&app, body).await, 403, "{what}");
        }
        assert!(
            finding(&app, &rule).await.is_none(),
            "nothing refused was acted on"
        );
        assert_eq!(app.state.events.stats.snapshot().refused, 7);

        // Subscriptions: confirmed for the allowed topic only.
        let confirmation = |topic_arn: &str| {
            json!({
                "Type": "SubscriptionConfirmation",
                "MessageId": uuid::Uuid::new_v4().to_string(),
                "Token": "2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a",
                "TopicArn": topic_arn,
                "Message": format!("You have chosen to subscribe to the topic {topic_arn}."),
                "SubscribeURL": format!("https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn={topic_arn}&Token=2336"),
                "Timestamp": "2024-05-01T10:00:00.000Z",
                "SignatureVersion": "1",
                "SigningCertURL": CERT_URL,
            })
        };
        let other = signed(
            &signer,
            confirmation("arn:aws:sns:us-east-1:123456789012:somebody-elses"),
            "1",
        );
        assert_eq!(post(&app, &other).await, 403);
        assert!(confirmed.lock().map(|v| v.is_empty()).unwrap_or(false));
        let ours = signed(&signer, confirmation(TOPIC), "1");
        assert_eq!(post(&app, &ours).await, 200);
        let visited = confirmed.lock().map(|v| v.clone()).unwrap_or_default();
        assert_eq!(visited.len(), 1, "{visited:?}");
        assert!(visited[0].contains("Action=ConfirmSubscription"));

        // And the genuine notification still works after all that.
        assert_eq!(post(&app, &good).await, 200);
        assert!(finding(&app, &rule).await.is_some());
    }
}
