//! In-app purchases over real sockets: StoreKit 2 signed transactions verified against a root
//! certificate the test made (rcgen), with replays, forgeries, an expired certificate, a wrong
//! bundle id, an expired subscription and a refund notification; Google Play purchases verified
//! against a local stand-in for Google's token and purchases endpoints (purchased, cancelled,
//! unknown). Grants come from the products file and are made once.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use common::{Opts, Player, Server};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};

const BUNDLE: &str = "com.example.game";

/// A test RSA key standing in for a Google service account's.
const SERVICE_KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC/VkUg2/9WaESl\nQyrvFRjaWFZFLKwaIMm+wPu+tg8ulOoybRqSykYVuYWHo7uuYRAs0rT1PLQ6fT8X\ncX0XMW2RkTdkrVCoLwrcEHjBAf+89NczdiyiwxtpMQlDLXzqt1b4KM+61vV13A4w\nXmCbc1cPFw2f3jU78bY1O3XSurE5t78nJlJ7jwnwJ3I4r+ODYIN+bDHcBzqbQn+Z\nVMkLPMtlZ6fjPsus/XtjEQtTeSpdUTlNykLjUJSfRU+VSf54qm5iW/+ws0P5mAsT\nJz9oe8hh2S9fM+OqAE3RpxRz2lVRfz8e6sXGpUbsxnTe6DYI56ZLzzBxDeosTAdL\n9iiDRmm3AgMBAAECggEALWJQKVgle6Blz/FbqLQPXhMf+256MARg9h8eV4Elnr3x\nwx4/9FuIPjTwKFk89kLNrGQaSiUo9sqogW4I5sxxmdqhEf9OJ2ZpJAPAML/BoldN\nCEbalYzD3rKj6MxMWfw848YCZ+X++QLGVtC8B4NXPhwQvj/dzqcpufytmNtxmCfF\nONSoDjdwr4mY2AiARyC9tCi1quSmHKKRzRUuu5GjFpUxtGW+kYY2bLMMV6tj6GsB\ndznXTtGOmbKEd3tGNOikfXF+dKV8tTWHGcrniqZten3mlB4pYJXrJGjz92Iz1HLF\ng45C9dus34ebGKDdP7Tqn7HFpuacYVYFpvVH9K2YIQKBgQDsAgF2OVFViZNnjqAh\neMKmT1Nmm4MT8cmWFhqLf2/yFqENp6xRYJeqorPo8VyHK6Vj+2T208gpW97Lzj3M\nhmXA6inA2RZZDJkDyRR3DkPZAUqNs/P7Zzsvoi4aMXuzfpcwfPd5okupZMILZcb+\nZXoBTK/gzsdyOlpCmIwRXPDhMQKBgQDPi4vF1LwqoIrHuge3YEjXQcxNLVeFlKlf\nCUemDuHE7ss1eERaQ1w3Gny0EQ8oKZH63aWQbR/jP0xC9U+4aDu6j3ddWxBjP5CB\nJk3ZVq2mAxwTpVd/iv7C8g+GVU4xd12bz2PiAHBL8aMbXC3ZvjxqT1U9NhL3rJst\nmraJq8z/ZwKBgDy1P18D23IfU3V98J7ri1ZwbUmlkxAcT/h1cxqTC17Ah2kVynOc\nXycbdx/ihiSXC5IuZog/beuFoEfYo3jq0V3QXjEnJmJ9pRaeMM93MeiuNllBAu+W\nXFkiZK2EMQe49ncYjigRoVjPfEKmSYvC2qFe8pbnWdJ+RB2BU/Zba/LhAoGACBw6\n5QswIzZM1gs1+/t+PTMsCaQI9IZfrAAP1bRlLC3ssPU3LpPNSbX2Q48bGYWuV7BL\npP4urdGuaDtv1xPzqZGrp3FEjaxROErH5gNWG9OpSDdA2RIUbIfLBYPV32b7uHf9\nPjqoKL+TkSEkBYtCjyD0gsTXLuiG09xk37Jf+2cCgYEApZFKV0MwgkdWL5Bs2+Sd\ngJ/6XZLA+TDyVboo9YpFlIah6ieKT3+ZVoQmd70lCMunQbsMqszf/+yIGia/ZFX0\ndVC2OZY0mxl6r3oBM2miPIUHC53PwQRdfqA3hSXO8VxfVL6qTJ84fbphGnvvt6Fr\nUBnC5BhXw5iQ3kXVYu3IXL4=\n-----END PRIVATE KEY-----";

/// A test "Apple" PKI: a root and an intermediate, which issue signing leaves.
struct Pki {
    root: rcgen::Certificate,
    int: rcgen::Certificate,
    int_key: KeyPair,
}

/// A signing leaf with its chain `[leaf, intermediate, root]` as `x5c`, and its key.
struct Chain {
    root_pem: String,
    x5c: Vec<String>,
    leaf: EcdsaKeyPair,
}

fn ca(name: &str) -> CertificateParams {
    let mut p = CertificateParams::new(vec![]).unwrap();
    p.distinguished_name.push(rcgen::DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p
}

fn pki() -> Pki {
    let root_key = KeyPair::generate().unwrap();
    let root = ca("Test Apple Root").self_signed(&root_key).unwrap();
    let int_key = KeyPair::generate().unwrap();
    let int = ca("Test WWDR")
        .signed_by(&int_key, &root, &root_key)
        .unwrap();
    Pki { root, int, int_key }
}

fn leaf(pki: &Pki, expired: bool) -> Chain {
    let leaf_key = KeyPair::generate().unwrap();
    let mut lp = CertificateParams::new(vec![]).unwrap();
    lp.distinguished_name
        .push(rcgen::DnType::CommonName, "Test StoreKit signing");
    if expired {
        lp.not_before = rcgen::date_time_ymd(2020, 1, 1);
        lp.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let cert = lp.signed_by(&leaf_key, &pki.int, &pki.int_key).unwrap();
    let signer = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &leaf_key.serialize_der(),
        &ring::rand::SystemRandom::new(),
    )
    .unwrap();
    Chain {
        root_pem: pki.root.pem(),
        x5c: [cert.der(), pki.int.der(), pki.root.der()]
            .iter()
            .map(|d| STANDARD.encode(d.as_ref()))
            .collect(),
        leaf: signer,
    }
}

/// A leaf under a PKI the server does not trust.
fn stranger() -> Chain {
    leaf(&pki(), false)
}

fn jws(c: &Chain, payload: &Value) -> String {
    let header = json!({"alg": "ES256", "x5c": c.x5c});
    let h = URL_SAFE_NO_PAD.encode(header.to_string());
    let p = URL_SAFE_NO_PAD.encode(payload.to_string());
    let input = format!("{h}.{p}");
    let sig = c
        .leaf
        .sign(&ring::rand::SystemRandom::new(), input.as_bytes())
        .unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
}

fn txn(id: &str, bundle: &str) -> Value {
    json!({"transactionId": id, "originalTransactionId": id, "bundleId": bundle,
           "productId": "com.example.gems_100", "purchaseDate": 1_711_700_000_000i64,
           "quantity": 1, "type": "Consumable"})
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

fn reason(v: &Value) -> &str {
    v["error"]["details"]["reason"].as_str().unwrap_or("")
}

fn gems(s: &Server, p: &Player) -> i64 {
    let (_, body) = s.http("GET", "/api/v1/wallets", Some(&p.access), None);
    body["wallets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["currency"] == "gems")
        .map_or(0, |w| w["balance"].as_i64().unwrap())
}

fn apple(s: &Server, p: &Player, signed: &str) -> (u16, Value) {
    s.http(
        "POST",
        "/api/v1/iap/apple",
        Some(&p.access),
        Some(&json!({ "signed_transaction": signed }).to_string()),
    )
}

/// A stand-in for Google: `POST /token` answers an access token; the purchases endpoint
/// answers by purchase token (`good`, `cancelled`, `pending`; anything else 404). Every
/// purchases call must carry the token it handed out.
fn fake_google() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut head = String::new();
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                head.push_str(&line);
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            let first = head.lines().next().unwrap_or("").to_owned();
            let authed = head.contains("Bearer fake-access-token");
            let (status, answer) = if first.starts_with("POST /token") {
                let form = String::from_utf8_lossy(&body);
                if form.contains("grant_type=urn") && form.contains("assertion=") {
                    (
                        200,
                        json!({"access_token": "fake-access-token", "expires_in": 3600}),
                    )
                } else {
                    (400, json!({"error": "invalid_grant"}))
                }
            } else if !authed {
                (401, json!({"error": "unauthenticated"}))
            } else if first
                .contains("/applications/com.example.game/purchases/products/gems_100/tokens/good ")
            {
                (
                    200,
                    json!({"purchaseState": 0, "orderId": "GPA.1234-5678", "productId": "gems_100",
                             "purchaseTimeMillis": "1711700000000", "consumptionState": 0,
                             "acknowledgementState": 0}),
                )
            } else if first.contains("/tokens/cancelled ") {
                (200, json!({"purchaseState": 1, "orderId": "GPA.9"}))
            } else if first.contains("/tokens/pending ") {
                (200, json!({"purchaseState": 2, "orderId": "GPA.8"}))
            } else {
                (404, json!({"error": "not found"}))
            };
            let text = answer.to_string();
            let _ = write!(
                conn,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            );
        }
    });
    format!("http://{addr}")
}

fn start(data: &Path, game: &Path, root_pem: &str, google: &str) -> Server {
    std::fs::write(game.join("config.lua"), "return {}\n").unwrap();
    std::fs::write(
        game.join("iap.json"),
        json!({"products": {"com.example.gems_100": {"currency": "gems", "amount": 100},
                            "gems_100": {"currency": "gems", "amount": 100}}})
        .to_string(),
    )
    .unwrap();
    let root = data.join("root.pem");
    std::fs::write(&root, root_pem).unwrap();
    let key = data.join("service-account.json");
    std::fs::write(
        &key,
        json!({"client_email": "iap@test.iam.gserviceaccount.com", "private_key": SERVICE_KEY,
               "token_uri": format!("{google}/token")})
        .to_string(),
    )
    .unwrap();
    let env = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    let opts = Opts {
        shards: Some(2),
        database_url: None,
        env: vec![
            env("ASOBI_APPLE_BUNDLE_ID", BUNDLE),
            env("ASOBI_APPLE_ROOT_CERT_PATH", root.to_str().unwrap()),
            env("ASOBI_GOOGLE_PACKAGE_NAME", BUNDLE),
            env("ASOBI_GOOGLE_SERVICE_ACCOUNT_KEY", key.to_str().unwrap()),
            env("ASOBI_GOOGLE_API_BASE", google),
        ],
    };
    Server::start(data, game, &opts)
}

#[test]
fn apple_and_google_receipts_grant_once() {
    let data = tempfile::tempdir().unwrap();
    let game = tempfile::tempdir().unwrap();
    let ours = pki();
    let apple_chain = leaf(&ours, false);
    let google = fake_google();
    let s = start(data.path(), game.path(), &apple_chain.root_pem, &google);
    let ann = s.register("iap_a");
    let bob = s.register("iap_b");

    // A valid StoreKit 2 transaction: verified, recorded, granted.
    let t1 = jws(&apple_chain, &txn("2000000001", BUNDLE));
    let (status, body) = apple(&s, &ann, &t1);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["product_id"], "com.example.gems_100");
    assert_eq!(body["transaction_id"], "2000000001");
    assert_eq!(body["expires_date"], "undefined");
    assert_eq!(body["valid"], true);
    assert_eq!(body["duplicate"], false);
    assert_eq!(body["granted"]["amount"], 100);
    assert_eq!(gems(&s, &ann), 100);
    // Replayed by the same player: duplicate, nothing granted.
    let (status, body) = apple(&s, &ann, &t1);
    assert_eq!((status, body["duplicate"].clone()), (200, json!(true)));
    assert_eq!(gems(&s, &ann), 100);
    // Replayed by another player: refused.
    let (status, body) = apple(&s, &bob, &t1);
    assert_eq!(
        (status, code(&body)),
        (409, "iap.transaction_already_claimed")
    );
    assert_eq!(gems(&s, &bob), 0);

    // Forged: signed by a chain that does not lead to our root.
    let forged = jws(&stranger(), &txn("2000000002", BUNDLE));
    let (status, body) = apple(&s, &bob, &forged);
    assert_eq!(
        (status, code(&body), reason(&body)),
        (422, "iap.verification_failed", "chain_validation_failed")
    );
    // Tampered: our chain, but the payload changed after signing.
    let parts: Vec<&str> = t1.split('.').collect();
    let evil = URL_SAFE_NO_PAD.encode(txn("2000000003", BUNDLE).to_string());
    let tampered = format!("{}.{evil}.{}", parts[0], parts[2]);
    let (status, body) = apple(&s, &bob, &tampered);
    assert_eq!((status, reason(&body)), (422, "signature_invalid"));
    // Expired signing certificate, issued under our own root.
    let expired = jws(&leaf(&ours, true), &txn("2000000004", BUNDLE));
    let (status, body) = apple(&s, &bob, &expired);
    assert_eq!(
        (status, reason(&body)),
        (422, "certificate_expired"),
        "{body}"
    );
    // A chain that embeds our root's certificate but was not issued by it is still refused:
    // only the configured root ends a chain, never the one the JWS carries.
    let mut impostor = leaf(&pki(), false);
    impostor.x5c[2] = apple_chain.x5c[2].clone();
    let (status, body) = apple(&s, &bob, &jws(&impostor, &txn("2000000007", BUNDLE)));
    assert_eq!((status, reason(&body)), (422, "chain_validation_failed"));
    // Wrong bundle id.
    let other_app = jws(&apple_chain, &txn("2000000005", "com.other.app"));
    let (status, body) = apple(&s, &bob, &other_app);
    assert_eq!((status, reason(&body)), (422, "bundle_id_mismatch"));
    // Malformed input.
    let (status, body) = s.http("POST", "/api/v1/iap/apple", Some(&bob.access), Some("{}"));
    assert_eq!((status, code(&body)), (400, "missing_field"));
    let (status, body) = apple(&s, &bob, "not-a-jws");
    assert_eq!((status, reason(&body)), (422, "invalid_jws_format"));
    let (status, _) = s.http("POST", "/api/v1/iap/apple", None, Some("{}"));
    assert_eq!(status, 401);
    // An expired subscription verifies, is recorded, and grants nothing.
    let mut sub = txn("2000000006", BUNDLE);
    sub["expiresDate"] = json!(1_600_000_000_000i64);
    sub["type"] = json!("Auto-Renewable Subscription");
    let (status, body) = apple(&s, &bob, &jws(&apple_chain, &sub));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["valid"], false);
    assert_eq!(body["granted"], Value::Null);
    assert_eq!(gems(&s, &bob), 0);

    // A refund notification (signed like a transaction) takes the grant back.
    let note = json!({"notificationType": "REFUND", "data": {"bundleId": BUNDLE,
                      "signedTransactionInfo": t1}});
    let (status, body) = s.http(
        "POST",
        "/api/v1/iap/apple/notifications",
        None,
        Some(&json!({"signedPayload": jws(&apple_chain, &note)}).to_string()),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reversed"], 100);
    assert_eq!(gems(&s, &ann), 0);
    // Told again: recorded once, nothing more taken.
    let (status, body) = s.http(
        "POST",
        "/api/v1/iap/apple/notifications",
        None,
        Some(&json!({"signedPayload": jws(&apple_chain, &note)}).to_string()),
    );
    assert_eq!((status, body["recorded"].clone()), (200, json!(false)));
    // A forged notification changes nothing.
    let (status, body) = s.http(
        "POST",
        "/api/v1/iap/apple/notifications",
        None,
        Some(&json!({"signedPayload": jws(&stranger(), &note)}).to_string()),
    );
    assert_eq!((status, reason(&body)), (422, "chain_validation_failed"));

    // Google: purchased grants once; cancelled, pending and unknown are refused.
    let google_buy = |p: &Player, token: &str| {
        s.http(
            "POST",
            "/api/v1/iap/google",
            Some(&p.access),
            Some(&json!({"product_id": "gems_100", "purchase_token": token}).to_string()),
        )
    };
    let (status, body) = google_buy(&bob, "good");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["order_id"], "GPA.1234-5678");
    assert_eq!(body["purchase_time"], "1711700000000");
    assert_eq!(body["acknowledged"], false);
    assert_eq!(body["valid"], true);
    assert_eq!(body["duplicate"], false);
    assert_eq!(gems(&s, &bob), 100);
    let (status, body) = google_buy(&bob, "good");
    assert_eq!((status, body["duplicate"].clone()), (200, json!(true)));
    let (status, body) = google_buy(&ann, "good");
    assert_eq!(
        (status, code(&body)),
        (409, "iap.transaction_already_claimed")
    );
    assert_eq!(gems(&s, &bob), 100);
    for (token, why) in [
        ("cancelled", "purchase_cancelled"),
        ("pending", "purchase_pending"),
        ("unknown", "purchase_not_found"),
    ] {
        let (status, body) = google_buy(&bob, token);
        assert_eq!((status, reason(&body)), (422, why), "{token}: {body}");
    }
    let (status, body) = s.http(
        "POST",
        "/api/v1/iap/google",
        Some(&bob.access),
        Some(r#"{"product_id": "gems_100"}"#),
    );
    assert_eq!((status, reason(&body)), (422, "missing_required_fields"));
    assert_eq!(gems(&s, &bob), 100);
    assert!(s.stop().success());
}
