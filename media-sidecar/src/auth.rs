//! edgemeet's HMAC scheme (see `edgemeet_protocol::signing`), used both ways: everything the sidecar
//! sends the edge, signed with the region's `sidecar_secret` and `API-KEY` = the region id, and
//! the admin calls it accepts.

pub use edgemeet_protocol::signing::{
    key_matches, sign, verify, AuthError, API_KEY_HEADER, SIGNATURE_HEADER,
};
