//! The console's sessions: an API key presented once at sign-in becomes a random session
//! token in an `HttpOnly`, `SameSite=Strict` cookie (`Secure` under TLS), so the key never
//! sits in the page's reach. Each session has its own CSRF token, which every state-changing
//! request made with the cookie must echo in `X-CSRF-Token`.
//!
//! *Invariant*: a session is only a pointer to its key. Every request re-reads the key, so a
//! revoked key's sessions stop at once, and a session never grants more than its key.
//! Sessions live in memory: a restart signs everyone out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// The session cookie's name.
pub(crate) const COOKIE: &str = "sealog_session";
/// The header a cookie-authenticated state-changing request carries its CSRF token in.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";
/// A session ends this long after sign-in, whatever its use.
const LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// ... or after this long unused.
const IDLE: Duration = Duration::from_secs(30 * 60);
/// Most sessions held at once: sign-ins past it are refused until some end.
const SESSIONS_MAX: usize = 10_000;

#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub key_id: String,
    pub csrf: String,
    started: Instant,
    used: Instant,
}

impl Session {
    /// Seconds until the session ends if it keeps being used.
    pub(crate) fn remaining(&self) -> u64 {
        LIFETIME.saturating_sub(self.started.elapsed()).as_secs()
    }
}

pub(crate) struct Sessions {
    /// By the SHA-256 of the token: the tokens themselves are kept nowhere.
    by_token: Mutex<HashMap<[u8; 32], Session>>,
    secure: bool,
}

fn random_hex() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the system's randomness");
    hex::encode(b)
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Equal-length comparison whose time does not depend on where the texts differ.
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Sessions {
    pub(crate) fn new(secure: bool) -> Self {
        Sessions {
            by_token: Mutex::new(HashMap::new()),
            secure,
        }
    }

    /// Starts a session for a key: its token (for the cookie) and the session.
    pub(crate) fn start(&self, key_id: &str) -> Option<(String, Session)> {
        let mut map = self.by_token.lock().expect("sessions lock");
        map.retain(|_, s| live(s));
        if map.len() >= SESSIONS_MAX {
            return None;
        }
        let token = random_hex();
        let now = Instant::now();
        let session = Session {
            key_id: key_id.to_string(),
            csrf: random_hex(),
            started: now,
            used: now,
        };
        map.insert(digest(&token), session.clone());
        Some((token, session))
    }

    /// The live session a token names, marked as used now.
    pub(crate) fn get(&self, token: &str) -> Option<Session> {
        let mut map = self.by_token.lock().expect("sessions lock");
        let key = digest(token);
        let s = map.get_mut(&key)?;
        if !live(s) {
            map.remove(&key);
            return None;
        }
        s.used = Instant::now();
        Some(s.clone())
    }

    pub(crate) fn end(&self, token: &str) {
        self.by_token
            .lock()
            .expect("sessions lock")
            .remove(&digest(token));
    }

    /// The `Set-Cookie` value that hands the token to the browser.
    pub(crate) fn cookie(&self, token: &str) -> String {
        format!(
            "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
            LIFETIME.as_secs(),
            if self.secure { "; Secure" } else { "" }
        )
    }

    /// The `Set-Cookie` value that removes it.
    pub(crate) fn cleared(&self) -> String {
        format!(
            "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
            if self.secure { "; Secure" } else { "" }
        )
    }
}

fn live(s: &Session) -> bool {
    s.started.elapsed() < LIFETIME && s.used.elapsed() < IDLE
}

/// The session token among a request's `Cookie` headers.
pub(crate) fn token_of(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE && !value.is_empty()).then(|| value.to_string())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_found_by_its_token_only_and_ends_when_ended() {
        let s = Sessions::new(false);
        let (token, session) = s.start("k1").unwrap();
        assert_eq!(s.get(&token).unwrap().key_id, "k1");
        assert_eq!(s.get(&token).unwrap().csrf, session.csrf);
        assert!(
            s.get(&session.csrf).is_none(),
            "the CSRF token is not a session token"
        );
        s.end(&token);
        assert!(s.get(&token).is_none());
        assert!(s.cookie(&token).contains("HttpOnly; SameSite=Strict"));
        assert!(!s.cookie(&token).contains("Secure"));
        assert!(Sessions::new(true).cookie(&token).ends_with("; Secure"));
    }

    #[test]
    fn tokens_compare_in_full() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
    }
}
