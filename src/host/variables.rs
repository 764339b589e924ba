//! `spin:variables/variables@3.0.0`: values come from [`super::HostSettings::variables`].
//!
//! Variable values are secrets: nothing here logs them.

use std::collections::BTreeMap;

use wasmtime::component::Accessor;

use super::bindings::variables::{self, Error};
use super::state::{Spin, SpinView};

/// Whether `name` is a valid Spin variable name: lowercase ASCII letters, digits
/// and underscores.
pub(crate) fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Looks a variable up as `spin:variables/variables.get` answers it.
pub(crate) fn lookup(variables: &BTreeMap<String, String>, name: &str) -> Result<String, Error> {
    if !is_valid_name(name) {
        return Err(Error::InvalidName(name.to_owned()));
    }
    variables
        .get(name)
        .cloned()
        .ok_or_else(|| Error::Undefined(name.to_owned()))
}

impl variables::Host for SpinView<'_> {}

impl<T> variables::HostWithStore<T> for Spin {
    async fn get(
        accessor: &Accessor<T, Self>,
        name: String,
    ) -> wasmtime::Result<Result<String, Error>> {
        let result = accessor.with(|mut access| lookup(&access.get().shared.variables, &name));
        if result.is_err() {
            tracing::debug!(target: "edgemeet::host", variable = %name, "variable lookup failed");
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_undefined_and_invalid() {
        let vars = BTreeMap::from([("jwt_secret".to_string(), "s3cret".to_string())]);
        assert_eq!(lookup(&vars, "jwt_secret").unwrap(), "s3cret");
        assert!(matches!(lookup(&vars, "missing"), Err(Error::Undefined(n)) if n == "missing"));
        assert!(matches!(
            lookup(&vars, "JWT_SECRET"),
            Err(Error::InvalidName(_))
        ));
        assert!(matches!(lookup(&vars, ""), Err(Error::InvalidName(_))));
        assert!(matches!(lookup(&vars, "a-b"), Err(Error::InvalidName(_))));
        assert!(is_valid_name("livekit_api_key2"));
    }
}
