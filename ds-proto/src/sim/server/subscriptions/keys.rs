//! The server's keys: the Ed25519 webhook signing key and its JWK Set (PROTOCOL.md 6.5, 7.1),
//! and the signed callback and claim tokens (7.3, 12.9).
//!
//! Both keys derive from the server seed ([`super::super::SimServerConfig::seed`]) through
//! the crate's seeded generator: no OS randomness, so equal seeds give equal keys, signatures
//! and tokens. That also means the private keys are as secret as the seed, which suits a
//! simulation and a test server, not a production deployment (6.5 wants secret, persisted
//! keys).

use crate::rng::Rng;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _};
use serde_json::{json, Value};

/// Salts that separate the generators derived from one seed.
const WEBHOOK_KEY_SALT: u64 = 0x7765_6268_6f6f_6b31; // "webhook1"
const TOKEN_KEY_SALT: u64 = 0x746f_6b65_6e6b_6579; // "tokenkey"

/// How long a token is valid after it was minted. A token stops working long before that in
/// practice: it must also name the current generation and wake (7.3), and a lease lasts at
/// most 10 minutes without a heartbeat. The expiry (12.9 "containing ... expiry") bounds the
/// life of a leaked token whatever happens to the subscription.
pub(super) const TOKEN_LIFETIME_SECS: u64 = 24 * 3600;

fn key_from(seed: u64, salt: u64) -> SigningKey {
    let mut rng = Rng::new(seed ^ salt);
    let mut bytes = [0u8; 32];
    for chunk in bytes.chunks_mut(8) {
        chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
    }
    SigningKey::from_bytes(&bytes)
}

/// What a token says (12.9: subscription identity, generation, expiry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TokenClaims {
    /// The subscription id.
    pub sub: String,
    /// Which life of the subscription id (a subscription deleted and created again under the
    /// same id is another incarnation; its predecessor's tokens are invalid for it).
    pub incarnation: u64,
    pub generation: u64,
    pub wake_id: String,
    /// Unix seconds.
    pub expires: u64,
}

/// Why a bearer token was refused: both are 401 (FIELD-NOTES, "401 for a bad or expired
/// token").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TokenError {
    Invalid,
    Expired,
}

/// The server's signing keys.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    webhook: SigningKey,
    token: SigningKey,
    kid: String,
}

impl Keys {
    pub(super) fn new(seed: u64) -> Self {
        let webhook = key_from(seed, WEBHOOK_KEY_SALT);
        // 6.5: `kid` SHOULD derive from key material. A JWK thumbprint needs SHA-256, which
        // this crate does not carry; the first 12 bytes of the public key, base64url, are
        // derived from the key just as well and are stable for its lifetime.
        let kid = format!(
            "ds_{}",
            URL_SAFE_NO_PAD.encode(&webhook.verifying_key().as_bytes()[..12])
        );
        Keys {
            webhook,
            token: key_from(seed, TOKEN_KEY_SALT),
            kid,
        }
    }

    /// The id of the webhook signing key.
    pub(super) fn kid(&self) -> &str {
        &self.kid
    }

    /// The JWK Set of the webhook signing key (6.5): one Ed25519 key (RFC 8037 `OKP`).
    pub(super) fn jwks(&self) -> Value {
        json!({
            "keys": [{
                "kty": "OKP",
                "crv": "Ed25519",
                "kid": self.kid,
                "use": "sig",
                "alg": "EdDSA",
                "x": URL_SAFE_NO_PAD.encode(self.webhook.verifying_key().as_bytes()),
            }]
        })
    }

    /// The `Webhook-Signature` header value for `body` sent at Unix second `t` (7.1):
    /// `t=<t>,kid=<kid>,ed25519=<unpadded base64url signature of "<t>.<body>">`.
    pub(super) fn webhook_signature(&self, t: u64, body: &[u8]) -> String {
        let mut signed = t.to_string().into_bytes();
        signed.push(b'.');
        signed.extend_from_slice(body);
        let sig = self.webhook.sign(&signed);
        format!(
            "t={t},kid={},ed25519={}",
            self.kid,
            URL_SAFE_NO_PAD.encode(sig.to_bytes())
        )
    }

    /// Mints a token: a JWT (`EdDSA`, 12.9 "signed, e.g. HMAC-signed JWTs") whose claims are
    /// `sub`, `inc`, `gen`, `wid`, `exp`. Deterministic (Ed25519 signatures are).
    pub(super) fn mint_token(&self, claims: &TokenClaims) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"EdDSA","typ":"JWT"}"#);
        let payload = json!({
            "sub": claims.sub,
            "inc": claims.incarnation,
            "gen": claims.generation,
            "wid": claims.wake_id,
            "exp": claims.expires,
        });
        let payload = URL_SAFE_NO_PAD.encode(payload.to_string());
        let signing_input = format!("{header}.{payload}");
        let sig = self.token.sign(signing_input.as_bytes());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
    }

    /// Checks a token's signature and expiry (at Unix second `now_unix`) and returns its
    /// claims (12.9: validated on every callback, ack and release).
    pub(super) fn verify_token(
        &self,
        token: &str,
        now_unix: u64,
    ) -> Result<TokenClaims, TokenError> {
        let (signing_input, sig) = token.rsplit_once('.').ok_or(TokenError::Invalid)?;
        let (_, payload) = signing_input.split_once('.').ok_or(TokenError::Invalid)?;
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
            .ok_or(TokenError::Invalid)?;
        self.token
            .verifying_key()
            .verify(signing_input.as_bytes(), &Signature::from_bytes(&sig))
            .map_err(|_| TokenError::Invalid)?;
        let payload: Value = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(TokenError::Invalid)?;
        let text = |k: &str| payload.get(k).and_then(Value::as_str).map(str::to_owned);
        let num = |k: &str| payload.get(k).and_then(Value::as_u64);
        let claims = TokenClaims {
            sub: text("sub").ok_or(TokenError::Invalid)?,
            incarnation: num("inc").ok_or(TokenError::Invalid)?,
            generation: num("gen").ok_or(TokenError::Invalid)?,
            wake_id: text("wid").ok_or(TokenError::Invalid)?,
            expires: num("exp").ok_or(TokenError::Invalid)?,
        };
        if claims.expires <= now_unix {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::VerifyingKey;

    fn claims() -> TokenClaims {
        TokenClaims {
            sub: "sub-1".to_owned(),
            incarnation: 3,
            generation: 7,
            wake_id: "w_1".to_owned(),
            expires: 1_000,
        }
    }

    #[test]
    fn keys_are_deterministic_per_seed() {
        assert_eq!(Keys::new(1).kid(), Keys::new(1).kid());
        assert_ne!(Keys::new(1).kid(), Keys::new(2).kid());
        // Every seed its own key: no two of the first 64 seeds share one.
        let kids: std::collections::BTreeSet<String> = (0..64)
            .map(|seed| Keys::new(seed).kid().to_owned())
            .collect();
        assert_eq!(kids.len(), 64);
        assert_eq!(
            Keys::new(5).mint_token(&claims()),
            Keys::new(5).mint_token(&claims())
        );
    }

    #[test]
    fn tokens_round_trip_and_tampering_is_refused() {
        let keys = Keys::new(9);
        let token = keys.mint_token(&claims());
        assert!(token.starts_with("eyJ"), "a JWT: {token}");
        assert_eq!(keys.verify_token(&token, 999), Ok(claims()));
        assert_eq!(keys.verify_token(&token, 1_000), Err(TokenError::Expired));
        // Another server's token, a changed payload, garbage.
        let other = Keys::new(10).mint_token(&claims());
        assert_eq!(keys.verify_token(&other, 0), Err(TokenError::Invalid));
        let mut forged = claims();
        forged.generation = 8;
        let forged_payload = keys.mint_token(&forged);
        let mixed = format!(
            "{}.{}",
            forged_payload.rsplit_once('.').unwrap().0,
            token.rsplit_once('.').unwrap().1
        );
        assert_eq!(keys.verify_token(&mixed, 0), Err(TokenError::Invalid));
        for junk in ["", "a.b", "a.b.c", "eyJ.eyJ.!!"] {
            assert_eq!(keys.verify_token(junk, 0), Err(TokenError::Invalid));
        }
    }

    #[test]
    fn webhook_signatures_verify_with_the_published_key() {
        let keys = Keys::new(4);
        let jwks = keys.jwks();
        let x = jwks["keys"][0]["x"].as_str().unwrap();
        let x: [u8; 32] = URL_SAFE_NO_PAD.decode(x).unwrap().try_into().unwrap();
        let vk = VerifyingKey::from_bytes(&x).unwrap();
        let header = keys.webhook_signature(1_767_225_600, b"{\"a\":1}");
        let (t, rest) = header.split_once(',').unwrap();
        assert_eq!(t, "t=1767225600");
        let (kid, sig) = rest.split_once(',').unwrap();
        assert_eq!(kid, format!("kid={}", keys.kid()));
        let sig = URL_SAFE_NO_PAD
            .decode(sig.strip_prefix("ed25519=").unwrap())
            .unwrap();
        let sig = Signature::from_bytes(&sig.try_into().unwrap());
        vk.verify(b"1767225600.{\"a\":1}", &sig).unwrap();
        assert!(vk.verify(b"1767225601.{\"a\":1}", &sig).is_err());
    }
}
