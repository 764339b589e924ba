//! The recorder's HMAC scheme, the same as the rest of edgemeet (see `edgemeet_protocol::signing`): the
//! job API accepts calls signed this way, and the recorder signs its events and heartbeats so.

pub use edgemeet_protocol::signing::{
    key_matches, sign, verify, AuthError, API_KEY_HEADER, SIGNATURE_HEADER,
};
