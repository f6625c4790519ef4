//! Pairing: two admins, one short code, and a PAKE.
//!
//! Device A shows a code (8 characters from an alphabet without look-alike
//! characters, about 40 bits), valid for 10 minutes and 5 tries. Device B
//! connects to A's peer port over TLS, each side presenting its own
//! certificate, and both run SPAKE2 (symmetric, Ed25519 group) with the
//! code as the password. Each then proves it holds the same key by a MAC,
//! keyed with the SPAKE2 key, over both certificate hashes *as it saw them
//! in the TLS handshake*. A wrong code gives different keys; a device in
//! the middle has a different certificate on each side, so the hashes
//! differ; either way the MACs fail and nothing is stored. A guess costs
//! one of the code's tries, so an attacker gets 5 guesses at 2^40.
//!
//! After a successful exchange each side records the other as *proposed*;
//! the admins compare names and short fingerprints and confirm, each on
//! their own device, before any backup data moves.

use std::time::{Duration, Instant};

use spake2::{Ed25519Group, Identity as SpakeIdentity, Password, Spake2};

use crate::identity::DeviceId;

/// How long a code is valid.
pub const CODE_LIFETIME: Duration = Duration::from_secs(600);
/// Wrong tries before a code is burned.
pub const CODE_TRIES: u32 = 5;
/// The code's alphabet: no 0/O, 1/I/L, 2/Z, 5/S, 8/B.
const ALPHABET: &[u8] = b"ACDEFGHJKMNPQRTUVWXY34679";
const CODE_LEN: usize = 8;
/// Binds the PAKE to this protocol and version.
const CONTEXT: &[u8] = b"hearth pairing v1";

/// A code on display.
struct Active {
    code: String,
    expires: Instant,
    tries_left: u32,
}

/// A SPAKE2 key waiting for the joining device's confirmation.
struct Waiting {
    key: Vec<u8>,
    client: DeviceId,
    joined: Joined,
    expires: Instant,
}

/// What a joining device told us about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Joined {
    pub name: String,
    /// Where to dial it back: the address it came from, its peer port.
    pub address: String,
    /// It asks to replace a device of ours (disaster recovery).
    pub replaces: bool,
}

/// The code shown on this device, if any, and exchanges in flight.
#[derive(Default)]
pub struct Codes {
    active: Option<Active>,
    waiting: Vec<Waiting>,
}

impl std::fmt::Debug for Codes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the code or the keys.
        f.debug_struct("Codes")
            .field("active", &self.active.is_some())
            .field("waiting", &self.waiting.len())
            .finish()
    }
}

/// What the admin page shows about the current code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shown {
    pub code: String,
    pub secs_left: u64,
    pub tries_left: u32,
}

/// Why a pairing attempt failed; shown to the admin as it is.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PairError {
    #[error(
        "That Hearth is not showing a pairing code (or it expired, or it was used up). On it, open Peers → Pair a new device and try again with the new code."
    )]
    NoCode,
    #[error(
        "The code was wrong, or something between the two devices interfered. Check the code and try again."
    )]
    Mismatch,
    #[error("The pairing message was malformed.")]
    Malformed,
}

impl Codes {
    /// Makes a new code, replacing any other.
    pub fn new_code(&mut self) -> Result<Shown, getrandom::Error> {
        // 256 is not a multiple of the alphabet's size: bytes at or above
        // the largest multiple are drawn again, so every character is
        // equally likely.
        let limit = (256 - 256 % ALPHABET.len()) as u32;
        let mut code = String::with_capacity(CODE_LEN);
        while code.len() < CODE_LEN {
            let b = getrandom::u32()? & 0xff;
            if b < limit {
                code.push(ALPHABET[b as usize % ALPHABET.len()] as char);
            }
        }
        let shown = Shown {
            code: code.clone(),
            secs_left: CODE_LIFETIME.as_secs(),
            tries_left: CODE_TRIES,
        };
        self.active = Some(Active {
            code,
            expires: Instant::now() + CODE_LIFETIME,
            tries_left: CODE_TRIES,
        });
        Ok(shown)
    }

    /// The code on display, if still valid.
    pub fn shown(&mut self) -> Option<Shown> {
        self.expire();
        self.active.as_ref().map(|a| Shown {
            code: a.code.clone(),
            secs_left: a
                .expires
                .saturating_duration_since(Instant::now())
                .as_secs(),
            tries_left: a.tries_left,
        })
    }

    /// Stops showing the code.
    pub fn cancel(&mut self) {
        self.active = None;
        self.waiting.clear();
    }

    fn expire(&mut self) {
        let now = Instant::now();
        if self
            .active
            .as_ref()
            .is_some_and(|a| a.expires <= now || a.tries_left == 0)
        {
            self.active = None;
        }
        self.waiting.retain(|w| w.expires > now);
    }

    /// The code's side of the exchange: takes the joiner's SPAKE2 message,
    /// spends a try, and returns our message and our MAC. `server` and
    /// `client` are the certificate hashes of this TLS session.
    pub fn respond(
        &mut self,
        client_msg: &[u8],
        server: DeviceId,
        client: DeviceId,
        joined: Joined,
    ) -> Result<(Vec<u8>, [u8; 32]), PairError> {
        self.expire();
        let active = self.active.as_mut().ok_or(PairError::NoCode)?;
        active.tries_left = active.tries_left.saturating_sub(1);
        let (state, msg) = start(&active.code);
        let key = state.finish(client_msg).map_err(|_| PairError::Malformed)?;
        let mac = mac(&key, b"server", server, client);
        self.waiting.retain(|w| w.client != client);
        self.waiting.push(Waiting {
            key,
            client,
            joined,
            expires: Instant::now() + Duration::from_secs(60),
        });
        Ok((msg, mac))
    }

    /// Checks the joiner's MAC. On success the code is used up and the
    /// joiner's details returned.
    pub fn confirm(
        &mut self,
        client_mac: &[u8],
        server: DeviceId,
        client: DeviceId,
    ) -> Result<Joined, PairError> {
        self.expire();
        let i = self
            .waiting
            .iter()
            .position(|w| w.client == client)
            .ok_or(PairError::NoCode)?;
        let w = self.waiting.remove(i);
        let want = mac(&w.key, b"client", server, client);
        if !constant_eq(&want, client_mac) {
            return Err(PairError::Mismatch);
        }
        self.active = None;
        Ok(w.joined)
    }
}

/// The joining side: our first message and the state to finish with.
pub struct Joiner {
    state: Spake2<Ed25519Group>,
}

impl std::fmt::Debug for Joiner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Joiner")
    }
}

impl Joiner {
    pub fn start(code: &str) -> (Joiner, Vec<u8>) {
        let (state, msg) = start(&normalise(code));
        (Joiner { state }, msg)
    }

    /// Checks the code side's MAC and returns ours.
    pub fn finish(
        self,
        server_msg: &[u8],
        server_mac: &[u8],
        server: DeviceId,
        client: DeviceId,
    ) -> Result<[u8; 32], PairError> {
        let key = self
            .state
            .finish(server_msg)
            .map_err(|_| PairError::Malformed)?;
        let want = mac(&key, b"server", server, client);
        if !constant_eq(&want, server_mac) {
            return Err(PairError::Mismatch);
        }
        Ok(mac(&key, b"client", server, client))
    }
}

/// What people type: case, spaces and dashes do not matter.
pub fn normalise(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

fn start(code: &str) -> (Spake2<Ed25519Group>, Vec<u8>) {
    Spake2::<Ed25519Group>::start_symmetric(
        &Password::new(code.as_bytes()),
        &SpakeIdentity::new(CONTEXT),
    )
}

fn mac(key: &[u8], role: &[u8], server: DeviceId, client: DeviceId) -> [u8; 32] {
    let k = blake3::derive_key("hearth pairing v1 confirmation", key);
    let mut h = blake3::Hasher::new_keyed(&k);
    h.update(role);
    h.update(&server.0);
    h.update(&client.0);
    *h.finalize().as_bytes()
}

/// `blake3::Hash` compares in constant time.
fn constant_eq(a: &[u8; 32], b: &[u8]) -> bool {
    <[u8; 32]>::try_from(b).is_ok_and(|b| blake3::Hash::from(*a) == blake3::Hash::from(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (DeviceId, DeviceId) {
        (DeviceId([1; 32]), DeviceId([2; 32]))
    }

    fn joined() -> Joined {
        Joined {
            name: "B".into(),
            address: "10.0.0.2:7443".into(),
            replaces: false,
        }
    }

    #[test]
    fn the_right_code_pairs_and_is_used_up() {
        let (a, b) = ids();
        let mut codes = Codes::default();
        let shown = codes.new_code().unwrap();
        assert_eq!(shown.code.len(), 8);
        assert!(shown.code.bytes().all(|c| ALPHABET.contains(&c)));
        let typed = format!(" {}-{} ", &shown.code[..4], shown.code[4..].to_lowercase());
        let (joiner, msg) = Joiner::start(&typed);
        let (reply, server_mac) = codes.respond(&msg, a, b, joined()).unwrap();
        let client_mac = joiner.finish(&reply, &server_mac, a, b).unwrap();
        assert_eq!(codes.confirm(&client_mac, a, b).unwrap(), joined());
        assert!(codes.shown().is_none(), "used up");
    }

    #[test]
    fn a_wrong_code_fails_on_both_sides_and_tries_run_out() {
        let (a, b) = ids();
        let mut codes = Codes::default();
        codes.new_code().unwrap();
        for left in (0..CODE_TRIES).rev() {
            let (joiner, msg) = Joiner::start("WRONGCOD");
            let (reply, server_mac) = codes.respond(&msg, a, b, joined()).unwrap();
            assert_eq!(
                joiner.finish(&reply, &server_mac, a, b),
                Err(PairError::Mismatch)
            );
            assert_eq!(codes.confirm(&[0u8; 32], a, b), Err(PairError::Mismatch));
            match codes.shown() {
                Some(s) => assert_eq!(s.tries_left, left),
                None => assert_eq!(left, 0, "burned only when the tries are spent"),
            }
        }
        let (_, msg) = Joiner::start("ANYTHING");
        assert_eq!(
            codes.respond(&msg, a, b, joined()).unwrap_err(),
            PairError::NoCode
        );
    }

    #[test]
    fn a_device_in_the_middle_is_caught() {
        // The joiner saw certificate M, not A: the MACs cannot match even
        // with the right code.
        let (a, b) = ids();
        let m = DeviceId([9; 32]);
        let mut codes = Codes::default();
        let code = codes.new_code().unwrap().code;
        let (joiner, msg) = Joiner::start(&code);
        let (reply, server_mac) = codes.respond(&msg, a, m, joined()).unwrap();
        assert_eq!(
            joiner.finish(&reply, &server_mac, m, b),
            Err(PairError::Mismatch)
        );
    }
}
